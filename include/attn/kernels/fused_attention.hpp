// attn/kernels/fused_attention.hpp: the fast path of the shared attention kernel, a tiled
// attention with an online softmax (Rabe and Staats, 2021; Dao et al., FlashAttention, 2022).
//
// Each task owns one tile of Bq queries of one (batch, head). It walks the keys in tiles of Bk,
// and keeps, per query row, the running maximum m, the running sum l of exp(score - m), and
// the running weighted sum acc of values. When a new tile raises a row's maximum from m to m',
// the old sum and accumulator are rescaled by exp(m - m'), so the result equals the softmax
// over all keys without ever holding a (T, S) matrix: memory is O(Bq * (Bk + Dv)) per thread.
// Causal tiles entirely above the diagonal are never computed; only tiles that cross it are
// masked. The per-row log-sum-exp, m + log(l), can be kept for a backward pass.
// Called through scaled_dot_product_attention, which validates arguments.
#ifndef ATTN_KERNELS_FUSED_ATTENTION_HPP
#define ATTN_KERNELS_FUSED_ATTENTION_HPP

#include <algorithm>
#include <cmath>
#include <limits>

#include "attn/config.hpp"
#include "attn/kernels/detail/gemm.hpp"
#include "attn/kernels/detail/leading_dims.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// Tile sizes: Bq queries by Bk keys. 128 x 256 float scores (128 KiB) plus a 256-key slice of K
/// and V stay in a 1-2 MiB L2 cache while the tile products run on them.
inline constexpr Index fused_query_tile = 128;
inline constexpr Index fused_key_tile = 256;

/// out = softmax(mask(scale * q k^T)) v per leading position, tile by tile.
/// @param lse optional, contiguous (leading..., T): each query row's log-sum-exp of its scaled,
///            masked scores (-inf for a fully masked row), for a backward pass to recompute from.
template <typename Scalar, int Rank>
void fused_attention(const TensorView<const Scalar, Rank>& q,
                     const TensorView<const Scalar, Rank>& k,
                     const TensorView<const Scalar, Rank>& v, const TensorView<Scalar, Rank>& out,
                     Scalar scale, const Mask& mask, Scalar* lse) {
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  constexpr Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index D = q.shape()[Rank - 1];
  const Index Dv = v.shape()[Rank - 1];
  const Index count = leading_count<Rank>(q.shape());
  const Index query_tiles = (T + fused_query_tile - 1) / fused_query_tile;
  const Index tasks = count * query_tiles;

  ATTN_OMP(parallel num_threads(tasks < 2 ? 1 : num_threads())) {
    RowMatrix<Scalar> scores(fused_query_tile, fused_key_tile);
    RowMatrix<Scalar> acc(fused_query_tile, Dv);
    Vector row_max(fused_query_tile), row_sum(fused_query_tile);
    Array new_max(fused_query_tile), shift(fused_query_tile), rescale(fused_query_tile);

    // With a causal mask later query tiles see more keys; handing them out first (dynamic
    // schedule) keeps both threads busy until the end.
    ATTN_OMP(for schedule(dynamic, 1))
    for (Index task = 0; task < tasks; ++task) {
      const Index n = task % count;
      const Index q0 = (query_tiles - 1 - task / count) * fused_query_tile;
      const Index rows = std::min(fused_query_tile, T - q0);
      const auto Q = as_matrix(leading_matrix(q, n));
      const auto K = as_matrix(leading_matrix(k, n));
      const auto V = as_matrix(leading_matrix(v, n));
      auto O = as_matrix(leading_matrix(out, n)).middleRows(q0, rows);
      const Scalar* q_tile = Q.data() + q0 * Q.outerStride();

      auto m = row_max.head(rows);
      auto l = row_sum.head(rows);
      auto a = acc.topRows(rows);
      m.setConstant(minus_inf);
      l.setZero();
      a.setZero();
      const Index key_end = mask.key_end(q0, rows, S);
      for (Index k0 = 0; k0 < key_end; k0 += fused_key_tile) {
        const Index cols = std::min(fused_key_tile, key_end - k0);
        auto s = scores.topLeftCorner(rows, cols);
        // Scores of this tile, masked only where the tile crosses the mask.
        gemm<false, true>(rows, cols, D, scale, q_tile, Q.outerStride(),
                          K.data() + k0 * K.outerStride(), K.outerStride(), Scalar(0),
                          scores.data(), fused_key_tile);
        if (!mask.tile_is_unmasked(q0, k0, cols)) mask.apply(s, q0, k0);
        // Online softmax update. A row that has seen only masked keys keeps m = -inf; shifting
        // it by 0 instead of -inf keeps its weights at exactly 0 rather than NaN. (Its rescale
        // factor exp(-inf) may come out tiny rather than 0: it multiplies l = 0 and acc = 0.)
        new_max.head(rows) = m.array().max(s.rowwise().maxCoeff().array());
        shift.head(rows) = (new_max.head(rows) == minus_inf).select(Scalar(0), new_max.head(rows));
        rescale.head(rows) = (m.array() - shift.head(rows)).exp();
        for (Index i = 0; i < rows; ++i) {          // row by row: contiguous, so exp vectorises
          exp_shifted_inplace(s.row(i), shift(i));  // masked scores -inf -> exactly 0
          l(i) = l(i) * rescale(i) + s.row(i).sum();
          a.row(i) *= rescale(i);
        }
        gemm<false, false>(rows, Dv, cols, Scalar(1), scores.data(), fused_key_tile,
                           V.data() + k0 * V.outerStride(), V.outerStride(), Scalar(1), acc.data(),
                           Dv);
        m = new_max.head(rows).matrix();
      }
      // Normalise. A row that saw only masked keys still has m = -inf and l = 0: test m.
      auto inverse = rescale.head(rows);
      const auto seen = m.array() > minus_inf;
      inverse = seen.select(l.array().inverse(), Scalar(0));
      O = (a.array().colwise() * inverse).matrix();
      if (lse != nullptr) {
        Eigen::Map<Vector>(lse + n * T + q0, rows) =
            seen.select(m.array() + l.array().log(), minus_inf).matrix();
      }
    }
  }
}

/// Backward of fused_attention, recomputing the weights tile by tile from the saved per-row
/// log-sum-exp (FlashAttention-2's backward, Dao 2023): P = exp(scale q k^T - lse) needs no
/// softmax sums, and rowsum(dP * P) equals rowsum(dout * out), computed once per row. Memory
/// stays O(T * D) per thread. Each task owns one (batch, head), so its dq, dk and dv are
/// written without races. Writes (does not accumulate) grad_q, grad_k, grad_v.
template <typename Scalar, int Rank>
void fused_attention_backward(
    const TensorView<const Scalar, Rank>& q, const TensorView<const Scalar, Rank>& k,
    const TensorView<const Scalar, Rank>& v, const TensorView<const Scalar, Rank>& out,
    const TensorView<const Scalar, Rank>& grad_out, const TensorView<Scalar, Rank>& grad_q,
    const TensorView<Scalar, Rank>& grad_k, const TensorView<Scalar, Rank>& grad_v, Scalar scale,
    const Mask& mask, const Scalar* lse) {
  constexpr Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index D = q.shape()[Rank - 1];
  const Index Dv = v.shape()[Rank - 1];
  const Index count = leading_count<Rank>(q.shape());
  constexpr Index Bq = fused_query_tile, Bk = fused_key_tile;

  ATTN_OMP(parallel num_threads(count < 2 ? 1 : num_threads())) {
    RowMatrix<Scalar> probabilities(Bq, Bk), grad_scores(Bq, Bk);
    Eigen::Matrix<Scalar, Eigen::Dynamic, 1> row_dot(T);
    ATTN_OMP(for schedule(dynamic, 1))
    for (Index n = 0; n < count; ++n) {
      const auto Q = as_matrix(leading_matrix(q, n));
      const auto K = as_matrix(leading_matrix(k, n));
      const auto V = as_matrix(leading_matrix(v, n));
      const auto O = as_matrix(leading_matrix(out, n));
      const auto dO = as_matrix(leading_matrix(grad_out, n));
      auto dQ = as_matrix(leading_matrix(grad_q, n));
      auto dK = as_matrix(leading_matrix(grad_k, n));
      auto dV = as_matrix(leading_matrix(grad_v, n));
      dQ.setZero();
      dK.setZero();
      dV.setZero();
      const Scalar* row_lse = lse + n * T;
      // rowsum(dP * P) = rowsum(dout * out): the softmax backward's per-row term.
      for (Index i = 0; i < T; ++i) row_dot(i) = dO.row(i).dot(O.row(i));

      for (Index k0 = 0; k0 < S; k0 += Bk) {
        const Index cols = std::min(Bk, S - k0);
        const Scalar* k_tile = K.data() + k0 * K.outerStride();
        const Scalar* v_tile = V.data() + k0 * V.outerStride();
        Scalar* dk_tile = dK.data() + k0 * dK.outerStride();
        Scalar* dv_tile = dV.data() + k0 * dV.outerStride();
        for (Index q0 = 0; q0 < T; q0 += Bq) {
          const Index rows = std::min(Bq, T - q0);
          if (mask.key_end(q0, rows, S) <= k0) continue;  // every key of this tile is masked
          const Scalar* q_tile = Q.data() + q0 * Q.outerStride();
          const Scalar* do_tile = dO.data() + q0 * dO.outerStride();
          auto p = probabilities.topLeftCorner(rows, cols);
          auto ds = grad_scores.topLeftCorner(rows, cols);
          // Forward stages 1-3 again: P = exp(scale q k^T - lse), masked entries 0.
          gemm<false, true>(rows, cols, D, scale, q_tile, Q.outerStride(), k_tile, K.outerStride(),
                            Scalar(0), probabilities.data(), Bk);
          if (!mask.tile_is_unmasked(q0, k0, cols)) mask.apply(p, q0, k0);
          for (Index i = 0; i < rows; ++i) {
            const Scalar shift = row_lse[q0 + i];
            if (shift == minus_inf) {
              p.row(i).setZero();  // a fully masked query has no gradient
            } else {
              exp_shifted_inplace(p.row(i), shift);
            }
          }
          // 5. out = P v        ->  dv += P^T dout,  dP = dout v^T
          gemm<true, false>(cols, Dv, rows, Scalar(1), probabilities.data(), Bk, do_tile,
                            dO.outerStride(), Scalar(1), dv_tile, dV.outerStride());
          gemm<false, true>(rows, cols, Dv, Scalar(1), do_tile, dO.outerStride(), v_tile,
                            V.outerStride(), Scalar(0), grad_scores.data(), Bk);
          // 3. P = softmax(S)   ->  dS = P (dP - rowsum(dout * out))
          for (Index i = 0; i < rows; ++i) {
            ds.row(i) = (p.row(i).array() * (ds.row(i).array() - row_dot(q0 + i))).matrix();
          }
          // 1. S = scale q k^T  ->  dq += scale dS k,  dk += scale dS^T q
          gemm<false, false>(rows, D, cols, scale, grad_scores.data(), Bk, k_tile, K.outerStride(),
                             Scalar(1), dQ.data() + q0 * dQ.outerStride(), dQ.outerStride());
          gemm<true, false>(cols, D, rows, scale, grad_scores.data(), Bk, q_tile, Q.outerStride(),
                            Scalar(1), dk_tile, dK.outerStride());
        }
      }
    }
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_FUSED_ATTENTION_HPP
