// attn/kernels/fused_attention.hpp: the fast path of the shared attention kernel, a tiled
// attention with an online softmax (Rabe and Staats, 2021; Dao et al., FlashAttention, 2022).
//
// Each task owns query tiles of Bq queries of one (batch, head) (FusedTasks). For each tile it
// walks the keys in tiles of Bk, and keeps, per query, the running maximum m, the running sum l
// of exp(score - m), and the running weighted sum acc of values. When a new tile raises a
// query's maximum from m to m', the old sum and accumulator are rescaled by exp(m - m'), so the
// result equals the softmax over all keys without ever holding a (T, S) matrix: memory is
// O(Bk * Bq + S * (D + Dv)) per thread (a tile of scores, and the task's keys and values).
// Causal tiles entirely above the diagonal are never computed; only tiles that cross it are
// masked. The per-query log-sum-exp, m + log(l), can be kept for a backward pass. The tile
// products run through tile_gemm (kernels/detail/tile_gemm.hpp), on tiles held keys by queries.
// Called through scaled_dot_product_attention, which validates arguments.
#ifndef ATTN_KERNELS_FUSED_ATTENTION_HPP
#define ATTN_KERNELS_FUSED_ATTENTION_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/detail/dispatch.hpp"
#include "attn/kernels/detail/leading_dims.hpp"
#include "attn/kernels/detail/score_masking.hpp"
#include "attn/kernels/detail/tile_gemm.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/gemm.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// Tile sizes: Bq queries by Bk keys. The 512 x 128 float scores of a tile (256 KiB) and the
/// keys and values they multiply stay in a 1-4 MiB L2 cache while the tile products run on them.
inline constexpr Index fused_query_tile = 128;
inline constexpr Index fused_key_tile = 512;

/// How the fused kernels split their work: a task is one (batch, head) with every `groups`-th
/// query tile of it, so that the keys and values it packs serve several tiles, and there are
/// still at least two tasks per thread when the leading positions are few (B = H = 1).
struct FusedTasks {
  Index count, query_tiles, groups;
  FusedTasks(Index leading, Index T, int threads)
      : count(leading),
        query_tiles((T + fused_query_tile - 1) / fused_query_tile),
        groups(std::clamp<Index>((Index{2} * threads + leading - 1) / std::max<Index>(leading, 1),
                                 1, std::max<Index>(query_tiles, 1))) {}
  Index size() const { return count * groups; }
  /// The task's last (largest) query tile; its others are every groups-th tile below it.
  Index last_tile(Index task) const {
    const Index group = task % groups;
    return group + (query_tiles - 1 - group) / groups * groups;
  }
};

/// dst = rows [first, first + count) of src, dst contiguous. The rows of a head in a
/// (B, T, 3 d_out) projection are kilobytes apart, a new page each, which the hardware
/// prefetchers do not follow: asking for the rows a few ahead keeps the copy from waiting on
/// memory for every row.
template <typename Source, typename Scalar>
void copy_rows(const Source& src, Index first, Index count, Scalar* dst) {
  constexpr Index ahead = 8;
  const Index cols = src.cols();
  for (Index i = 0; i < count; ++i) {
#if defined(__GNUC__)
    if (i + ahead < count) {
      const Scalar* next = src.data() + (first + i + ahead) * src.outerStride();
      for (Index c = 0; c < cols; c += Index{64} / Index{sizeof(Scalar)})
        __builtin_prefetch(next + c);
    }
#endif
    Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>(dst + i * cols, cols) = src.row(first + i);
  }
}

/// Whether the forward runs a query tile of `rows` rows through online_softmax_single_query
/// (in Scalar, whatever the products' arithmetic): one query and no dropout. The backward asks
/// too, to recompute that tile's weights in the same arithmetic.
inline bool single_query_tile(Index rows, bool dropout) {
  return rows == 1 && !dropout;
}

/// One key tile of the online softmax for a single query q (D): scores s = scale K q over the
/// tile's `cols` keys into `scores` (contiguous), masked, then the running maximum m, sum l and
/// accumulator acc (Dv) updated as in fused_attention's loop, on whole vectors.
template <typename Scalar>
void online_softmax_single_query(Index cols, Index D, Index Dv, Scalar scale, const Scalar* keys,
                                 const Scalar* values, const Scalar* q,
                                 const HeadMasking<Scalar>& head, Index q0, Index k0,
                                 Scalar* scores, Scalar& m, Scalar& l, Scalar* acc) {
  constexpr Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  Eigen::Map<Vector> s(scores, cols);
  s.noalias() =
      scale * (Eigen::Map<const RowMatrix<Scalar>>(keys, cols, D) * Eigen::Map<const Vector>(q, D));
  Eigen::Map<RowMatrix<Scalar>> s_t(scores, cols, 1);
  head.apply_transposed(s_t, q0, k0);
  const Scalar m_new = std::max(m, s.maxCoeff());
  const Scalar shifted_by = m_new == minus_inf ? Scalar(0) : m_new;  // as in fused_attention
  const Scalar factor = std::exp(m - shifted_by);
  exp_shifted_inplace(s, shifted_by);  // masked scores -inf -> exactly 0
  l = l * factor + s.sum();
  Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>> a(acc, Dv);
  a *= factor;
  a.noalias() += s.transpose() * Eigen::Map<const RowMatrix<Scalar>>(values, cols, Dv);
  m = m_new;
}

/// out = dropout(softmax(mask(scale * q k^T))) v per leading position, tile by tile.
/// @param dropout optional: the positional dropout mask of this forward (training), else null.
/// @param lse optional, contiguous (leading..., T): each query row's log-sum-exp of its scaled,
///            masked scores (-inf for a fully masked row), for a backward pass to recompute from.
/// @param threads how many threads share the tasks.
template <typename Scalar, int Rank>
void fused_attention_kernel(const TensorView<const Scalar, Rank>& q,
                            const TensorView<const Scalar, Rank>& k,
                            const TensorView<const Scalar, Rank>& v,
                            const TensorView<Scalar, Rank>& out, Scalar scale,
                            bool bfloat16_products, const ScoreMasking<Scalar>& masking,
                            const PositionalDropout<Scalar>* dropout, Scalar* lse, int threads) {
  using RowArray = Eigen::Array<Scalar, 1, Eigen::Dynamic>;
  constexpr Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index D = q.shape()[Rank - 1];
  const Index Dv = v.shape()[Rank - 1];
  const FusedTasks tasks(leading_count<Rank>(q.shape()), T, threads);
  const Index heads = heads_of<Rank>(q.shape()), kv_heads = heads_of<Rank>(k.shape());
  if (T == 0) return;

  // While another process holds a core, the calling thread works alone (TeamWatch).
  watched_parallel(tasks.size() < 2 ? 1 : team_watch().threads(threads), [&] {
    // The scores are held transposed, keys by queries: a row is one key's scores for every
    // query of the tile, so the online softmax's per-query maximum, exp and sum run along
    // contiguous rows, and the score product broadcasts K's elements against the tile's Q^T
    // (tile_gemm.hpp). Each task first copies the keys and values it needs to contiguous
    // buffers: in a (B, T, 3 d_out) projection their rows are kilobytes apart, a page each,
    // and the products would stall on TLB and cache misses reading them in place.
    RowMatrix<Scalar> scores_t(fused_key_tile, fused_query_tile);
    RowMatrix<Scalar> queries(fused_query_tile, D), queries_t(D, fused_query_tile);
    RowMatrix<Scalar> keys, values;  // the task's keys and values, contiguous, when copied
    RowMatrix<Scalar> acc(fused_query_tile, Dv);
    RowArray row_max(fused_query_tile), row_sum(fused_query_tile), new_max(fused_query_tile),
        shift(fused_query_tile), rescale(fused_query_tile), keep(fused_query_tile);
    std::uint32_t key_low[fused_query_tile], key_high[fused_query_tile];  // dropout's row keys

    ATTN_OMP(for schedule(dynamic, 1) nowait)
    for (Index task = 0; task < tasks.size(); ++task) {
      const Index n = task / tasks.groups;
      const Index n_kv = kv_leading(n, heads, kv_heads);
      const auto Q = as_matrix(leading_matrix(q, n));
      const auto K = as_matrix(leading_matrix(k, n_kv));
      const auto V = as_matrix(leading_matrix(v, n_kv));
      const HeadMasking<Scalar> head = masking.at(n);
      const Mask& mask = head.mask;
      const Index last = tasks.last_tile(task);
      const Index last_q0 = last * fused_query_tile;
      // The keys any tile of the task sees: from the first tile's first (a sliding window's
      // start) to the last tile's last; keys[j] holds key j.
      const Index first_key = mask.key_begin(task % tasks.groups * fused_query_tile, S);
      const Index packed = mask.key_end(last_q0, std::min(fused_query_tile, T - last_q0), S);
      // Keys and values already contiguous (a KV cache's head, a (B, H, S, D) tensor) are read
      // in place: decoding one query, the copy alone would double what the step reads.
      const bool keys_in_place = K.outerStride() == D, values_in_place = V.outerStride() == Dv;
      if (packed > first_key && !keys_in_place) {
        keys.resize(S, D);  // once per thread: later calls find it sized
        copy_rows(K, first_key, packed - first_key, keys.data() + first_key * D);
      }
      if (packed > first_key && !values_in_place) {
        values.resize(S, Dv);
        copy_rows(V, first_key, packed - first_key, values.data() + first_key * Dv);
      }
      const Scalar* key_rows = keys_in_place ? K.data() : keys.data();
      const Scalar* value_rows = values_in_place ? V.data() : values.data();

      // With a causal mask later query tiles see more keys: the largest goes first.
      for (Index tile = last; tile >= 0; tile -= tasks.groups) {
        const Index q0 = tile * fused_query_tile;
        const Index rows = std::min(fused_query_tile, T - q0);
        copy_rows(Q, q0, rows, queries.data());
        queries_t.leftCols(rows) = queries.topRows(rows).transpose();
        if (dropout != nullptr) dropout->row_keys(n, q0, rows, key_low, key_high);
        auto m = row_max.head(rows);
        auto l = row_sum.head(rows);
        auto a = acc.topRows(rows);
        m.setConstant(minus_inf);
        l.setZero();
        a.setZero();
        const Index key_end = mask.key_end(q0, rows, S);
        for (Index k0 = mask.key_begin(q0, S); k0 < key_end; k0 += fused_key_tile) {
          const Index cols = std::min(fused_key_tile, key_end - k0);
          if (single_query_tile(rows, dropout != nullptr)) {
            // One query (decoding): its scores are one contiguous column, and the online
            // softmax runs along it in whole-vector passes rather than key by key.
            online_softmax_single_query(cols, D, Dv, scale, key_rows + k0 * D, value_rows + k0 * Dv,
                                        queries.data(), head, q0, k0, scores_t.data(), m(0), l(0),
                                        a.data());
            continue;
          }
          auto s_t = scores_t.topLeftCorner(cols, rows);
          // Scores of this tile, (keys, queries), masked only where the tile crosses the mask.
          tile_product(bfloat16_products, cols, rows, D, scale, key_rows + k0 * D, D, Index{1},
                       queries_t.data(), fused_query_tile, false, scores_t.data(),
                       fused_query_tile);
          head.apply_transposed(s_t, q0, k0);
          // Online softmax update. A query that has seen only masked keys keeps m = -inf;
          // shifting it by 0 instead of -inf keeps its weights at exactly 0 rather than NaN.
          // (Its rescale factor exp(-inf) may come out tiny rather than 0: it multiplies
          // l = 0 and acc = 0.)
          auto m_new = new_max.head(rows);
          auto shifted_by = shift.head(rows);
          auto factor = rescale.head(rows);
          m_new = m;
          for (Index j = 0; j < cols; ++j) m_new = m_new.max(s_t.row(j).array());
          shifted_by = (m_new == minus_inf).select(Scalar(0), m_new);
          factor = (m - shifted_by).exp();
          l *= factor;
          for (Index j = 0; j < cols; ++j) {
            exp_shifted_inplace(s_t.row(j), shifted_by);  // masked scores -inf -> exactly 0
            l += s_t.row(j).array();                      // the softmax's sum, before dropout
            if (dropout != nullptr) {                     // 4. dropout on the weights
              dropout->multipliers(k0 + j, rows, key_low, key_high, keep.data());
              s_t.row(j).array() *= keep.head(rows);
            }
          }
          a.array().colwise() *= factor.transpose();
          // acc += P v, P read transposed from the (keys, queries) tile.
          tile_product(bfloat16_products, rows, Dv, cols, Scalar(1), scores_t.data(), Index{1},
                       fused_query_tile, value_rows + k0 * Dv, Dv, true, acc.data(), Dv);
          m = m_new;
        }
        // Normalise. A query that saw only masked keys still has m = -inf and l = 0: test m.
        auto inverse = rescale.head(rows);
        const auto seen = m > minus_inf;
        inverse = seen.select(l.inverse(), Scalar(0));
        as_matrix(leading_matrix(out, n)).middleRows(q0, rows) =
            (a.array().colwise() * inverse.transpose()).matrix();
        if (lse != nullptr) {
          Eigen::Map<RowArray>(lse + n * T + q0, rows) = seen.select(m + l.log(), minus_inf);
        }
      }
    }
  });
}

/// Backward of fused_attention, recomputing the weights tile by tile from the saved per-row
/// log-sum-exp (FlashAttention-2's backward, Dao 2023): P = exp(scale q k^T - lse) needs no
/// softmax sums, and rowsum(dP * P) equals rowsum(dout * out), computed once per row. Each task
/// owns one (batch, kv head) and the query heads that read it (one, without grouped-query
/// attention), so its dq, dk and dv are written without races, dk and dv summed over those
/// heads; it copies k and v of its head to contiguous buffers once, and q and dout of each query
/// head (also transposed), O((T + S) * D) per thread; all six tile products run through
/// tile_gemm on tiles held keys by queries, as in the forward. Writes (does not accumulate)
/// grad_q, grad_k, grad_v.
template <typename Scalar, int Rank>
void fused_attention_backward_kernel(
    const TensorView<const Scalar, Rank>& q, const TensorView<const Scalar, Rank>& k,
    const TensorView<const Scalar, Rank>& v, const TensorView<const Scalar, Rank>& out,
    const TensorView<const Scalar, Rank>& grad_out, const TensorView<Scalar, Rank>& grad_q,
    const TensorView<Scalar, Rank>& grad_k, const TensorView<Scalar, Rank>& grad_v, Scalar scale,
    bool bfloat16_products, const ScoreMasking<Scalar>& masking,
    const PositionalDropout<Scalar>* dropout, const Scalar* lse,
    [[maybe_unused]] int threads) {  // unused without OpenMP
  using RowArray = Eigen::Array<Scalar, 1, Eigen::Dynamic>;
  constexpr Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index D = q.shape()[Rank - 1];
  const Index Dv = v.shape()[Rank - 1];
  const Index kv_count = leading_count<Rank>(k.shape());
  const Index heads = heads_of<Rank>(q.shape()), kv_heads = heads_of<Rank>(k.shape());
  const Index group = heads / kv_heads;  // query heads per kv head
  constexpr Index Bq = fused_query_tile, Bk = fused_key_tile;

  ATTN_OMP(parallel num_threads(kv_count < 2 ? 1 : threads)) {
    // Tiles keys by queries: (j, i) is key k0 + j, query q0 + i.
    RowMatrix<Scalar> probabilities_t(Bk, Bq), grad_scores_t(Bk, Bq);
    // q and dout transposed tile by tile, (D, Bq) blocks one after another: as one (D, T)
    // matrix their rows would lie T floats apart, a multiple of 4 KiB for T = 1024, and the
    // products reading them would keep evicting their own rows from the L1 cache.
    const Index query_tiles = (T + Bq - 1) / Bq;
    RowMatrix<Scalar> queries(T, D), queries_t(query_tiles * D, Bq), keys(S, D), values(S, Dv);
    RowMatrix<Scalar> grads(T, Dv), grads_t(query_tiles * Dv, Bq);  // dout of the head
    RowMatrix<Scalar> dq(T, D), dk(Bk, D), dv(Bk, Dv);
    // Per query: rowsum(dout * out), and the shift that turns scores into probabilities, lse,
    // or +inf for a query whose keys are all masked (so that its probabilities come out 0).
    RowArray row_dot(T), shift(T);
    // With dropout: the mask's multipliers (0 or 1 / (1 - p)) of a tile, the dropped weights,
    // and each query's dropout key.
    RowMatrix<Scalar> keep_t, dropped_t;
    std::vector<std::uint32_t> key_low, key_high;
    if (dropout != nullptr) {
      keep_t.resize(Bk, Bq);
      dropped_t.resize(Bk, Bq);
      key_low.resize(static_cast<std::size_t>(T));
      key_high.resize(static_cast<std::size_t>(T));
    }
    ATTN_OMP(for schedule(dynamic, 1))
    for (Index n_kv = 0; n_kv < kv_count; ++n_kv) {
      copy_rows(as_matrix(leading_matrix(k, n_kv)), 0, S, keys.data());
      copy_rows(as_matrix(leading_matrix(v, n_kv)), 0, S, values.data());
      auto dK = as_matrix(leading_matrix(grad_k, n_kv));
      auto dV = as_matrix(leading_matrix(grad_v, n_kv));
      for (Index g = 0; g < group; ++g) {
        const Index n = query_leading(n_kv, g, heads, kv_heads);
        const HeadMasking<Scalar> head = masking.at(n);
        const Mask& mask = head.mask;
        const auto O = as_matrix(leading_matrix(out, n));
        const auto dO = as_matrix(leading_matrix(grad_out, n));
        copy_rows(as_matrix(leading_matrix(q, n)), 0, T, queries.data());
        copy_rows(dO, 0, T, grads.data());
        for (Index tile = 0; tile < query_tiles; ++tile) {
          const Index rows = std::min(Bq, T - tile * Bq);
          queries_t.middleRows(tile * D, D).leftCols(rows) =
              queries.middleRows(tile * Bq, rows).transpose();
          grads_t.middleRows(tile * Dv, Dv).leftCols(rows) =
              grads.middleRows(tile * Bq, rows).transpose();
        }
        for (Index i = 0; i < T; ++i) {
          row_dot(i) = dO.row(i).dot(O.row(i));  // rowsum(dP * P) = rowsum(dout * out)
          const Scalar row_lse = lse[n * T + i];
          shift(i) = row_lse == minus_inf ? std::numeric_limits<Scalar>::infinity() : row_lse;
        }
        dq.setZero();
        if (dropout != nullptr) dropout->row_keys(n, 0, T, key_low.data(), key_high.data());

        for (Index k0 = 0; k0 < S; k0 += Bk) {
          const Index cols = std::min(Bk, S - k0);
          const Scalar* k_tile = keys.data() + k0 * D;
          const Scalar* v_tile = values.data() + k0 * Dv;
          dk.topRows(cols).setZero();
          dv.topRows(cols).setZero();
          for (Index q0 = 0; q0 < T; q0 += Bq) {
            const Index rows = std::min(Bq, T - q0);
            // Every key of this tile is masked for every query of this query tile: skip it.
            if (mask.key_end(q0, rows, S) <= k0 || mask.key_begin(q0, S) >= k0 + cols) continue;
            // The arithmetic the forward used for these queries.
            const bool bfloat16_tile =
                bfloat16_products && !single_query_tile(rows, dropout != nullptr);
            auto p_t = probabilities_t.topLeftCorner(cols, rows);
            auto ds_t = grad_scores_t.topLeftCorner(cols, rows);
            // Forward stages 1-3 again: P = exp(scale q k^T - lse), masked entries 0.
            tile_product(bfloat16_tile, cols, rows, D, scale, k_tile, D, Index{1},
                         queries_t.data() + q0 * D, Bq, false, probabilities_t.data(), Bq);
            head.apply_transposed(p_t, q0, k0);
            for (Index j = 0; j < cols; ++j)
              exp_shifted_inplace(p_t.row(j), shift.segment(q0, rows));
            // 4. P' = dropout(P), the same mask again (its multipliers M, 0 or 1 / (1 - p))
            const Scalar* weights_t = probabilities_t.data();
            if (dropout != nullptr) {
              for (Index j = 0; j < cols; ++j) {
                dropout->multipliers(k0 + j, rows, key_low.data() + q0, key_high.data() + q0,
                                     keep_t.row(j).data());
              }
              dropped_t.topLeftCorner(cols, rows) =
                  p_t.cwiseProduct(keep_t.topLeftCorner(cols, rows));
              weights_t = dropped_t.data();
            }
            // 5. out = P' v       ->  dv += P'^T dout,  dP' = dout v^T
            tile_product(bfloat16_tile, cols, Dv, rows, Scalar(1), weights_t, Bq, Index{1},
                         grads.data() + q0 * Dv, Dv, true, dv.data(), Dv);
            tile_product(bfloat16_tile, cols, rows, Dv, Scalar(1), v_tile, Dv, Index{1},
                         grads_t.data() + q0 * Dv, Bq, false, grad_scores_t.data(), Bq);
            // 4. P' = P M          ->  dP = dP' M
            if (dropout != nullptr) ds_t.array() *= keep_t.topLeftCorner(cols, rows).array();
            // 3. P = softmax(S)   ->  dS = P (dP - rowsum(dout * out))
            for (Index j = 0; j < cols; ++j) {
              ds_t.row(j).array() =
                  p_t.row(j).array() * (ds_t.row(j).array() - row_dot.segment(q0, rows));
            }
            // 1. S = scale q k^T  ->  dq += scale dS k,  dk += scale dS^T q
            tile_product(bfloat16_tile, rows, D, cols, scale, grad_scores_t.data(), Index{1}, Bq,
                         k_tile, D, true, dq.data() + q0 * D, D);
            tile_product(bfloat16_tile, cols, D, rows, scale, grad_scores_t.data(), Bq, Index{1},
                         queries.data() + q0 * D, D, true, dk.data(), D);
          }
          if (g == 0) {
            dK.middleRows(k0, cols) = dk.topRows(cols);
            dV.middleRows(k0, cols) = dv.topRows(cols);
          } else {  // the group's later query heads add theirs
            dK.middleRows(k0, cols) += dk.topRows(cols);
            dV.middleRows(k0, cols) += dv.topRows(cols);
          }
        }
        as_matrix(leading_matrix(grad_q, n)) = dq;
      }
    }
  }
}

/// fused_attention_kernel on num_threads() threads: compiled into this program from the
/// headers, or, for the kernel rank 4, attn::compiled's kernel for the CPU's level.
template <typename Scalar, int Rank>
void fused_attention(const TensorView<const Scalar, Rank>& q,
                     const TensorView<const Scalar, Rank>& k,
                     const TensorView<const Scalar, Rank>& v, const TensorView<Scalar, Rank>& out,
                     Scalar scale, bool bfloat16_products, const ScoreMasking<Scalar>& masking,
                     const PositionalDropout<Scalar>* dropout, Scalar* lse) {
  if constexpr (compiled_kernels && Rank == 4) {  // the program compiles no body of its own
    dispatched<Scalar>().fused_attention(q, k, v, out, scale, bfloat16_products, masking, dropout,
                                         lse, num_threads());
  } else {
    fused_attention_kernel(q, k, v, out, scale, bfloat16_products, masking, dropout, lse,
                           num_threads());
  }
}

/// fused_attention_backward_kernel on num_threads() threads, chosen as fused_attention.
template <typename Scalar, int Rank>
void fused_attention_backward(
    const TensorView<const Scalar, Rank>& q, const TensorView<const Scalar, Rank>& k,
    const TensorView<const Scalar, Rank>& v, const TensorView<const Scalar, Rank>& out,
    const TensorView<const Scalar, Rank>& grad_out, const TensorView<Scalar, Rank>& grad_q,
    const TensorView<Scalar, Rank>& grad_k, const TensorView<Scalar, Rank>& grad_v, Scalar scale,
    bool bfloat16_products, const ScoreMasking<Scalar>& masking,
    const PositionalDropout<Scalar>* dropout, const Scalar* lse) {
  if constexpr (compiled_kernels && Rank == 4) {
    dispatched<Scalar>().fused_attention_backward(q, k, v, out, grad_out, grad_q, grad_k, grad_v,
                                                  scale, bfloat16_products, masking, dropout, lse,
                                                  num_threads());
  } else {
    fused_attention_backward_kernel(q, k, v, out, grad_out, grad_q, grad_k, grad_v, scale,
                                    bfloat16_products, masking, dropout, lse, num_threads());
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_FUSED_ATTENTION_HPP
