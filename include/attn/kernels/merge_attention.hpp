// attn/kernels/merge_attention.hpp: attention over keys split into chunks, computed chunk by
// chunk and merged exactly (split-K, "flash decoding", ring attention).
//
// Split the S keys (and values) into chunks c. Attention over chunk c alone gives, per query row,
//     out_c = softmax_c(scores_c) v_c   and   lse_c = log sum_j exp(score_j) over c's keys,
// the scores scaled and masked as in scaled_dot_product_attention. The softmax over every key
// has the sum of the chunks' sums as its denominator, so
//     lse = log sum_c exp(lse_c),   out = sum_c exp(lse_c - lse) out_c
// is, in exact arithmetic, the attention over all keys: nothing is approximated, only the order
// of the additions changes (the online softmax of Rabe and Staats, 2021, and of Dao et al.'s
// FlashAttention, 2022, applied once across chunks instead of tile by tile). The merge subtracts
// the largest lse_c before exponentiating, so no weight overflows. A chunk whose keys are all
// masked for a row has lse_c = -inf and weight 0; a row masked in every chunk gives zeros and
// lse -inf, attn's rule for a fully masked row. The merged lse makes merges composable: a merge
// of merges equals one merge of every chunk (a ring can merge as the chunks go round).
//
// Who uses it: split-K decoding on one machine (a few queries against a long key cache, the keys
// split so that every thread has a chunk), and split-KV or ring attention across processes or
// machines, each holding a slice of the keys. Moving the partials between processes is the
// host's business (MPI, torch.distributed, ...); attn provides the two ends: attention_partial,
// which computes a chunk's (out, lse) with the shared kernel, and merge_attention_partials.
// examples/split_kv_mpi.cpp gathers the partials with MPI.
#ifndef ATTN_KERNELS_MERGE_ATTENTION_HPP
#define ATTN_KERNELS_MERGE_ATTENTION_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/threads.hpp"

namespace attn {

/// One chunk's share of an attention: its output and each query row's log-sum-exp, as
/// attention_partial writes them. Views: the memory must outlive the merge.
///   out (..., T, Dv): softmax over the chunk's keys times its values (zeros for a row whose
///       keys in the chunk are all masked);
///   lse (..., T): log-sum-exp of the row's scaled, masked scores over the chunk's keys (-inf for
///       such a row).
template <typename Scalar, int Rank>
struct AttentionPartial {
  static_assert(Rank >= 2, "AttentionPartial needs (..., tokens, dim) outputs.");
  detail::ConstView<Scalar, Rank> out;
  detail::ConstView<Scalar, Rank - 1> lse;
};

namespace detail {

/// The shape without its last dim: the (..., T) of a (..., T, Dv) output.
template <int Rank>
Shape<Rank - 1> without_last_dim(const Shape<Rank>& shape) {
  Shape<Rank - 1> result{};
  std::copy(shape.begin(), shape.end() - 1, result.begin());
  return result;
}

/// The offset, in elements, of position `flat` (row-major) over the first `dims` dims of a view.
template <std::size_t N>
Index leading_offset(const std::array<Index, N>& shape, const std::array<Index, N>& strides,
                     int dims, Index flat) {
  Index offset = 0;
  for (int d = dims - 1; d >= 0; --d) {
    offset += (flat % shape[d]) * strides[d];
    flat /= shape[d];
  }
  return offset;
}

/// The lowest and highest address a view touches, as integers (comparing pointers into
/// different objects is unspecified); {1, 0} for a view with no elements.
template <typename T, int Rank>
std::pair<std::uintptr_t, std::uintptr_t> address_range(const TensorView<T, Rank>& view) {
  if (view.numel() == 0) return {1, 0};
  Index low = 0, high = 0;
  for (int d = 0; d < Rank; ++d) {
    const Index reach = (view.shape()[d] - 1) * view.strides()[d];
    (reach < 0 ? low : high) += reach;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(view.data());
  const auto bytes = [](Index elements) {
    return static_cast<std::uintptr_t>(elements) * sizeof(T);
  };
  return {base - bytes(-low), base + bytes(high) + sizeof(T) - 1};
}

/// True when two views of one shape address the same elements in the same order.
template <typename A, typename B, int Rank>
bool same_elements(const TensorView<A, Rank>& a, const TensorView<B, Rank>& b) {
  if (static_cast<const void*>(a.data()) != static_cast<const void*>(b.data())) return false;
  for (int d = 0; d < Rank; ++d) {
    if (a.shape()[d] > 1 && a.strides()[d] != b.strides()[d]) return false;
  }
  return true;
}

/// @throws std::invalid_argument naming the arguments if `written` shares memory with `read`
///         without being exactly the same view (an exact alias is merged row by row safely).
template <typename Scalar, int Rank>
void check_alias(const char* who, const char* written_name, const TensorView<Scalar, Rank>& written,
                 const std::string& read_name, const TensorView<const Scalar, Rank>& read) {
  if (written.numel() == 0 || read.numel() == 0 || same_elements(written, read)) return;
  const auto w = address_range(written), r = address_range(read);
  if (w.first <= r.second && r.first <= w.second) {
    throw std::invalid_argument(concat(who, ": ", written_name, " (shape ",
                                       to_string(written.shape()), ", strides ",
                                       to_string(written.strides()), ") overlaps ", read_name,
                                       " (strides ", to_string(read.strides()),
                                       ") without being the same view; write into a separate "
                                       "tensor, or into that partial's own view exactly"));
  }
}

/// All the checks of merge_attention_partials, before anything is written.
template <typename Scalar, int Rank>
void validate_merge(const std::vector<AttentionPartial<Scalar, Rank>>& partials,
                    const TensorView<Scalar, Rank>& out, const TensorView<Scalar, Rank - 1>& lse,
                    bool want_lse) {
  constexpr const char* who = "merge_attention_partials";
  constexpr Scalar plus_inf = std::numeric_limits<Scalar>::infinity();
  if (partials.empty()) {
    throw std::invalid_argument(concat(who, ": partials is empty; there is nothing to merge"));
  }
  const Shape<Rank>& first = partials[0].out.shape();
  for (std::size_t c = 1; c < partials.size(); ++c) {
    if (partials[c].out.shape() != first) {
      throw ShapeError(concat(who, ": partials[", c, "].out has shape ",
                              to_string(partials[c].out.shape()), " but partials[0].out has shape ",
                              to_string(first), "; every partial must cover the same queries"));
    }
  }
  if (out.shape() != first) {
    throw ShapeError(concat(who, ": out has shape ", to_string(out.shape()),
                            " but the partials' outputs have shape ", to_string(first)));
  }
  const Shape<Rank - 1> rows_shape = without_last_dim<Rank>(first);
  for (std::size_t c = 0; c < partials.size(); ++c) {
    if (partials[c].lse.shape() != rows_shape) {
      throw ShapeError(concat(who, ": partials[", c, "].lse has shape ",
                              to_string(partials[c].lse.shape()), " but must be ",
                              to_string(rows_shape), ", partials[", c,
                              "].out's shape without its last dim"));
    }
  }
  if (want_lse && lse.shape() != rows_shape) {
    throw ShapeError(concat(who, ": lse has shape ", to_string(lse.shape()), " but must be ",
                            to_string(rows_shape), ", out's shape ", to_string(first),
                            " without its last dim (or pass an empty view to skip it)"));
  }
  const Index rows = numel(rows_shape);
  for (std::size_t c = 0; c < partials.size(); ++c) {
    const auto& view = partials[c].lse;
    for (Index r = 0; r < rows; ++r) {
      const Scalar value = view.data()[leading_offset(view.shape(), view.strides(), Rank - 1, r)];
      if (std::isnan(value) || value == plus_inf) {
        throw std::invalid_argument(concat(
            who, ": partials[", c, "].lse holds ", value, " at row ", r, " of ", rows, " (shape ",
            to_string(rows_shape), "); a log-sum-exp is finite, or -inf for a fully masked row"));
      }
    }
    check_alias(who, "out", out, concat("partials[", c, "].out"), partials[c].out);
    if (want_lse) check_alias(who, "lse", lse, concat("partials[", c, "].lse"), view);
  }
}

/// Above this many elements of partial outputs read, the merge runs on every thread.
inline constexpr Index merge_threaded_elements = Index{1} << 16;

}  // namespace detail

/// Attention over one chunk of the keys, for merge_attention_partials: the shared kernel on its
/// fused path, keeping each query row's log-sum-exp.
///
/// Runs scaled_dot_product_attention(q, k, v, out, options) with AttentionPath::fused and writes
/// the per-row log-sum-exp of the scaled, masked scores into `lse`: -inf for a row whose keys in
/// this chunk are all masked (out's row is then zero), so that the merge gives it weight 0.
/// Masks are the chunk's own, in chunk-local key indices (local key j is global key s0 + j for
/// the chunk of global keys [s0, s0 + S)): a causal mask with offset `offset` over all keys is
/// Mask::causal(offset - s0) here, an explicit mask is its columns [s0, s0 + S) (a slice). An
/// empty chunk (S = 0) is allowed: every row gets zeros and -inf.
///
/// @param q       (..., T, D)
/// @param k       (..., S, D), this chunk's keys
/// @param v       (..., S, Dv), this chunk's values
/// @param out     (..., T, Dv), written. Must not overlap the inputs.
/// @param lse     (..., T), written; any strides. Must not overlap out or the inputs.
/// @param options mask (chunk-local), scale (default 1/sqrt(D): the same for every chunk).
/// @throws ShapeError for shapes that disagree (the kernel's checks, and lse not (..., T)),
///         std::invalid_argument for dropout in training mode (each chunk would draw its own
///         positional mask, keyed by chunk-local key indices: the merge would be a dropout of the
///         right distribution but neither a single pass's masks nor one any backward replays),
///         for AttentionPath::reference (only the fused path keeps the log-sum-exp), and for the
///         kernel's other refusals (bad scale).
template <typename Scalar, int Rank>
void attention_partial(const detail::ConstView<Scalar, Rank>& q,
                       const detail::ConstView<Scalar, Rank>& k,
                       const detail::ConstView<Scalar, Rank>& v,
                       const TensorView<Scalar, Rank>& out, const TensorView<Scalar, Rank - 1>& lse,
                       const AttentionOptions<Scalar>& options = {}) {
  static_assert(Rank >= 2, "attention_partial needs (..., tokens, dim) views.");
  static_assert(std::is_floating_point_v<Scalar> && !std::is_const_v<Scalar>,
                "attention_partial: out must be a mutable float or double view.");
  constexpr const char* who = "attention_partial";
  if (options.training && options.dropout > Scalar(0)) {
    throw std::invalid_argument(detail::concat(
        who, ": dropout (", options.dropout,
        ") in training mode is not supported: the chunks' dropout masks would not compose into "
        "one pass's; merge partials in eval mode, or set dropout to 0"));
  }
  if (options.path == AttentionPath::reference) {
    throw std::invalid_argument(
        detail::concat(who,
                       ": AttentionPath::reference keeps no log-sum-exp; a partial runs the "
                       "fused path (leave path automatic)"));
  }
  const Shape<Rank - 1> rows_shape = detail::without_last_dim<Rank>(q.shape());
  if (lse.shape() != rows_shape) {
    throw ShapeError(detail::concat(who, ": lse has shape ", to_string(lse.shape()),
                                    " but must be ", to_string(rows_shape), ", q's shape ",
                                    to_string(q.shape()), " without its last dim (..., T)"));
  }
  AttentionOptions<Scalar> fused = options;
  fused.path = AttentionPath::fused;
  AttentionCache<Scalar> cache;
  scaled_dot_product_attention<Scalar, Rank>(q, k, v, out, fused, {}, &cache);
  // The cache holds the log-sum-exp contiguous (leading..., T), -inf for a fully masked row.
  const Index rows = numel(rows_shape);
  ATTN_ASSERT(static_cast<Index>(cache.log_sum_exp.size()) == rows);
  for (Index r = 0; r < rows; ++r) {
    lse.data()[detail::leading_offset(lse.shape(), lse.strides(), Rank - 1, r)] =
        cache.log_sum_exp[static_cast<std::size_t>(r)];
  }
}

/// Merges the partials of attention over disjoint chunks of the keys into the attention over
/// all of them: per query row, with m = max_c lse_c,
///     lse = m + log sum_c exp(lse_c - m),   out = sum_c exp(lse_c - lse) out_c.
/// Exact up to rounding (file comment). A partial whose lse is -inf for a row has weight 0 there
/// and its out row is not read; a row that is -inf in every partial gives a zero row and lse -inf.
/// Views may have any strides. Rows run on attn's threads when there are many.
///
/// @param partials one (out, lse) per chunk, as attention_partial or an earlier merge wrote them;
///                 the order does not matter beyond rounding.
/// @param out      (..., T, Dv), written. It may be exactly one partial's out (the same view:
///                 data and strides), to merge in place; any other overlap with a partial's out
///                 is refused.
/// @param lse      optional (..., T) output of the merged log-sum-exp, for merging the result
///                 again (a ring, a tree); an empty view skips it. It may be exactly one
///                 partial's lse. out and lse must not overlap each other, nor out a partial's
///                 lse, nor lse a partial's out (not checked: a packed (T, Dv + 1) buffer holds
///                 interleaved out and lse views that share no element).
/// @throws std::invalid_argument if partials is empty, if a partial's lse holds NaN or +inf, or
///         if an output overlaps a partial other than as the same view; ShapeError (a subclass)
///         if the partials' outputs differ in shape, out differs from them, or a lse is not the
///         out shape without its last dim. The message names the function, the argument (with
///         its index in partials) and the shapes. Nothing is written when it throws.
template <typename Scalar, int Rank>
void merge_attention_partials(const std::vector<AttentionPartial<Scalar, Rank>>& partials,
                              const TensorView<Scalar, Rank>& out,
                              const TensorView<Scalar, Rank - 1>& lse = {}) {
  static_assert(Rank >= 2, "merge_attention_partials needs (..., tokens, dim) views.");
  static_assert(std::is_floating_point_v<Scalar> && !std::is_const_v<Scalar>,
                "merge_attention_partials: out must be a mutable float or double view.");
  using RowArray = Eigen::Array<Scalar, 1, Eigen::Dynamic>;
  constexpr Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
  const bool want_lse = lse.data() != nullptr || lse.numel() != 0;
  detail::validate_merge<Scalar, Rank>(partials, out, lse, want_lse);

  const auto chunks = static_cast<Index>(partials.size());
  const Index Dv = out.shape()[Rank - 1];
  const Index rows = numel(detail::without_last_dim<Rank>(out.shape()));
  const Index min_rows =
      std::max<Index>(1, detail::merge_threaded_elements / std::max<Index>(1, chunks * Dv));
  detail::for_each_thread_row_block(rows, min_rows, [&](Index, Index row0, Index count) {
    std::vector<Scalar> weights(static_cast<std::size_t>(chunks));  // each chunk's lse, then weight
    RowArray acc(Dv);  // the row, summed here first: out may be one of the partials' outs
    for (Index r = row0; r < row0 + count; ++r) {
      // The row's largest lse: its chunk gets weight exp(0) = 1, the others at most 1.
      Scalar m = minus_inf;
      Index top = 0;
      for (Index c = 0; c < chunks; ++c) {
        const auto& view = partials[static_cast<std::size_t>(c)].lse;
        const Scalar value =
            view.data()[detail::leading_offset(view.shape(), view.strides(), Rank - 1, r)];
        weights[static_cast<std::size_t>(c)] = value;
        if (value > m) {
          m = value;
          top = c;
        }
      }
      Scalar* const out_row =
          out.data() + detail::leading_offset(out.shape(), out.strides(), Rank - 1, r);
      const Index out_stride = out.strides()[Rank - 1];
      Scalar row_lse = minus_inf;
      if (m == minus_inf) {
        acc.setZero();  // masked in every chunk: attn's fully masked row
      } else {
        Scalar others = 0;  // sum of exp(lse_c - m) over c != top, so lse = m + log1p(others)
        for (Index c = 0; c < chunks; ++c) {
          Scalar& weight = weights[static_cast<std::size_t>(c)];
          weight = c == top ? Scalar(1) : std::exp(weight - m);  // exp(-inf) = 0
          if (c != top) others += weight;
        }
        const Scalar inverse = Scalar(1) / (Scalar(1) + others);
        acc.setZero();
        for (Index c = 0; c < chunks; ++c) {
          const Scalar weight = weights[static_cast<std::size_t>(c)] * inverse;
          if (weight == Scalar(0)) continue;  // masked here (or negligible): not read
          const auto& view = partials[static_cast<std::size_t>(c)].out;
          const Scalar* row =
              view.data() + detail::leading_offset(view.shape(), view.strides(), Rank - 1, r);
          const Index stride = view.strides()[Rank - 1];
          if (stride == 1) {
            acc += weight * Eigen::Map<const RowArray>(row, Dv);
          } else {
            for (Index d = 0; d < Dv; ++d) acc(d) += weight * row[d * stride];
          }
        }
        row_lse = m + std::log1p(others);
      }
      if (out_stride == 1) {
        Eigen::Map<RowArray>(out_row, Dv) = acc;
      } else {
        for (Index d = 0; d < Dv; ++d) out_row[d * out_stride] = acc(d);
      }
      if (want_lse) {
        lse.data()[detail::leading_offset(lse.shape(), lse.strides(), Rank - 1, r)] = row_lse;
      }
    }
  });
}

}  // namespace attn

#endif  // ATTN_KERNELS_MERGE_ATTENTION_HPP
