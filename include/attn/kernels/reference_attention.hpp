// attn/kernels/reference_attention.hpp: the readable path of the shared attention kernel. It
// materialises the (T, S) scores of each (batch, head) and runs the five stages in the book's
// order. It is the oracle the fused path is tested against, and the path that can return the
// attention weights. Called through scaled_dot_product_attention, which validates arguments.
#ifndef ATTN_KERNELS_REFERENCE_ATTENTION_HPP
#define ATTN_KERNELS_REFERENCE_ATTENTION_HPP

#include "attn/config.hpp"
#include "attn/detail/leading_dims.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// out = dropout(softmax(mask(scale * q k^T))) v per leading position; shapes as in
/// scaled_dot_product_attention. `dropout` > 0 means dropout is active (training); it then runs
/// serially so the generator's draws, and hence the masks, do not depend on the thread count.
template <typename QT, typename KT, typename VT, typename Scalar, int Rank>
void reference_attention(const TensorView<QT, Rank>& q, const TensorView<KT, Rank>& k,
                         const TensorView<VT, Rank>& v, const TensorView<Scalar, Rank>& out,
                         Scalar scale, const Mask& mask, Scalar dropout, Generator* generator,
                         const TensorView<Scalar, Rank>* weights) {
  const Index T = q.shape()[Rank - 2];
  const Index S = k.shape()[Rank - 2];
  const Index count = leading_count<Rank>(q.shape());
  const bool serial = dropout > Scalar(0) || count < 2;
  ATTN_OMP(parallel num_threads(serial ? 1 : num_threads())) {
    RowMatrix<Scalar> scores(T, S);  // one per thread, reused: no allocation in the loop
    ATTN_OMP(for schedule(dynamic, 1))
    for (Index n = 0; n < count; ++n) {
      const auto Q = as_matrix(leading_matrix(q, n));
      const auto K = as_matrix(leading_matrix(k, n));
      const auto V = as_matrix(leading_matrix(v, n));
      auto O = as_matrix(leading_matrix(out, n));

      // 1. scores = scale * q k^T: how well each query matches each key.
      scores.noalias() = scale * (Q * K.transpose());
      // 2. mask: forbidden query/key pairs get -inf, so the softmax gives them zero weight.
      mask.apply(scores);
      // 3. softmax over the keys: each query's weights are positive and sum to 1.
      softmax_rows_inplace(scores);
      // 4. dropout on the weights (training only).
      if (dropout > Scalar(0)) dropout_inplace(scores, dropout, *generator);
      // 5. weighted sum of the values.
      O.noalias() = scores * V;

      if (weights != nullptr) as_matrix(leading_matrix(*weights, n)) = scores;
    }
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_REFERENCE_ATTENTION_HPP
