// attn/kernels/reference_attention.hpp: the readable path of the shared attention kernel. It
// materialises the (T, S) scores of each (batch, head) and runs the five stages in the book's
// order. It is the oracle the fused path is tested against, and the path that can return the
// attention weights. Called through scaled_dot_product_attention, which validates arguments.
#ifndef ATTN_KERNELS_REFERENCE_ATTENTION_HPP
#define ATTN_KERNELS_REFERENCE_ATTENTION_HPP

#include <optional>

#include "attn/config.hpp"
#include "attn/kernels/detail/leading_dims.hpp"
#include "attn/kernels/detail/score_masking.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/gemm.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// out = dropout(softmax(mask(scale * q k^T))) v per leading position; shapes as in
/// scaled_dot_product_attention (k and v may have fewer heads than q: grouped-query attention).
/// `dropout` > 0 means dropout is active (training); it then runs serially so the generator's
/// draws, and hence the masks, do not depend on the thread count.
template <typename Scalar, int Rank>
void reference_attention(const TensorView<const Scalar, Rank>& q,
                         const TensorView<const Scalar, Rank>& k,
                         const TensorView<const Scalar, Rank>& v,
                         const TensorView<Scalar, Rank>& out, Scalar scale,
                         const ScoreMasking<Scalar>& masking, Scalar dropout, Generator* generator,
                         const TensorView<Scalar, Rank>* weights) {
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index D = q.shape()[Rank - 1];
  const Index Dv = v.shape()[Rank - 1];
  const Index count = leading_count<Rank>(q.shape());
  const Index heads = heads_of<Rank>(q.shape()), kv_heads = heads_of<Rank>(k.shape());
  [[maybe_unused]] const bool serial = dropout > Scalar(0) || count < 2;
  ATTN_OMP(parallel num_threads(serial ? 1 : num_threads())) {
    RowMatrix<Scalar> scores(T, S);  // one per thread, reused: no allocation in the loop
    ATTN_OMP(for schedule(dynamic, 1))
    for (Index n = 0; n < count; ++n) {
      const Index n_kv = kv_leading(n, heads, kv_heads);
      const auto Q = as_matrix(leading_matrix(q, n));
      const auto K = as_matrix(leading_matrix(k, n_kv));
      const auto V = as_matrix(leading_matrix(v, n_kv));
      auto O = as_matrix(leading_matrix(out, n));

      // 1. scores = scale * q k^T: how well each query matches each key. (Every product goes
      //    through detail::gemm, the one product the fused path uses too: one instantiation.)
      gemm<false, true>(T, S, D, scale, Q.data(), Q.outerStride(), K.data(), K.outerStride(),
                        Scalar(0), scores.data(), S);
      // 2. mask: the additive mask is added, forbidden query/key pairs get -inf, so the softmax
      //    gives them zero weight.
      masking.at(n).apply(scores);
      // 3. softmax over the keys: each query's weights are positive and sum to 1.
      softmax_rows_inplace(scores);
      // 4. dropout on the weights (training only).
      if (dropout > Scalar(0)) dropout_inplace(scores, dropout, *generator);
      // 5. out = weights v: the weighted sum of the values.
      gemm<false, false>(T, Dv, S, Scalar(1), scores.data(), S, V.data(), V.outerStride(),
                         Scalar(0), O.data(), O.outerStride());

      if (weights != nullptr) as_matrix(leading_matrix(*weights, n)) = scores;
    }
  }
}

/// Backward of reference_attention. It recomputes the weights from q and k (stages 1-3) and
/// replays the dropout mask from `replay`, a copy of the generator taken before the forward, so
/// the forward keeps nothing. Writes (does not accumulate) grad_q, grad_k, grad_v. With fewer kv
/// heads than query heads, each kv head's gradients sum over the query heads that read it: the
/// loop runs over kv heads, so no two threads write the same rows, and within one over its
/// query heads in the forward's order (which the dropout replay needs).
template <typename Scalar, int Rank>
void reference_attention_backward(
    const TensorView<const Scalar, Rank>& q, const TensorView<const Scalar, Rank>& k,
    const TensorView<const Scalar, Rank>& v, const TensorView<const Scalar, Rank>& grad_out,
    const TensorView<Scalar, Rank>& grad_q, const TensorView<Scalar, Rank>& grad_k,
    const TensorView<Scalar, Rank>& grad_v, Scalar scale, const ScoreMasking<Scalar>& masking,
    Scalar dropout, Generator* replay) {
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index D = q.shape()[Rank - 1];
  const Index Dv = v.shape()[Rank - 1];
  const Index kv_count = leading_count<Rank>(k.shape());
  const Index heads = heads_of<Rank>(q.shape()), kv_heads = heads_of<Rank>(k.shape());
  const Index group = heads / kv_heads;  // query heads per kv head
  [[maybe_unused]] const bool serial =
      dropout > Scalar(0) || kv_count < 2;  // replays the forward's draw order
  ATTN_OMP(parallel num_threads(serial ? 1 : num_threads())) {
    RowMatrix<Scalar> weights(T, S), dropped(T, S), grad_scores(T, S);
    ATTN_OMP(for schedule(dynamic, 1))
    for (Index n_kv = 0; n_kv < kv_count; ++n_kv) {
      const auto K = as_matrix(leading_matrix(k, n_kv));
      const auto V = as_matrix(leading_matrix(v, n_kv));
      auto dK = as_matrix(leading_matrix(grad_k, n_kv));
      auto dV = as_matrix(leading_matrix(grad_v, n_kv));
      for (Index g = 0; g < group; ++g) {
        const Index n = query_leading(n_kv, g, heads, kv_heads);
        const Scalar kv_beta = g == 0 ? Scalar(0) : Scalar(1);  // sum over the group's heads
        const auto Q = as_matrix(leading_matrix(q, n));
        const auto dO = as_matrix(leading_matrix(grad_out, n));
        auto dQ = as_matrix(leading_matrix(grad_q, n));

        // Forward stages 1-4 again: P = softmax(mask(scale q k^T)), P' = dropout(P).
        gemm<false, true>(T, S, D, scale, Q.data(), Q.outerStride(), K.data(), K.outerStride(),
                          Scalar(0), weights.data(), S);
        masking.at(n).apply(weights);
        softmax_rows_inplace(weights);
        dropped = weights;
        // This (batch, head)'s draws are replayed twice: for P' here and for dP below.
        std::optional<Generator> same_mask;
        if (dropout > Scalar(0)) {
          same_mask = *replay;
          dropout_inplace(dropped, dropout, *replay);
        }

        // 5. out = P' v          ->  dv = P'^T dout,  dP' = dout v^T
        gemm<true, false>(S, Dv, T, Scalar(1), dropped.data(), S, dO.data(), dO.outerStride(),
                          kv_beta, dV.data(), dV.outerStride());
        gemm<false, true>(T, S, Dv, Scalar(1), dO.data(), dO.outerStride(), V.data(),
                          V.outerStride(), Scalar(0), grad_scores.data(), S);
        // 4. P' = dropout(P)     ->  dP = dP' with the same mask and scale
        if (same_mask) dropout_backward_inplace(grad_scores, dropout, *same_mask);
        // 3. P = softmax(S)      ->  dS = P (dP - rowsum(dP P))
        softmax_backward_rows_inplace(weights, grad_scores);
        // 2. masked entries have P = 0, so dS is already 0 there.
        // 1. S = scale q k^T     ->  dq = scale dS k,  dk = scale dS^T q
        gemm<false, false>(T, D, S, scale, grad_scores.data(), S, K.data(), K.outerStride(),
                           Scalar(0), dQ.data(), dQ.outerStride());
        gemm<true, false>(S, D, T, scale, grad_scores.data(), S, Q.data(), Q.outerStride(), kv_beta,
                          dK.data(), dK.outerStride());
      }
    }
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_REFERENCE_ATTENTION_HPP
