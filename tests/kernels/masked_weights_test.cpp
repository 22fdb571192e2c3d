// Masked attention weights are exactly 0, on every build. Eigen 3.4's vectorised exp returns
// about 2.9e-39 (float) or 5.6e-309 (double) for exp(-inf), so without care a masked weight is
// tiny rather than 0, and a masked key's value leaks into the output as weight x value. This file
// is compiled into attn_tests, which no preset builds with -march (a portable build), and, with
// ATTN_NATIVE, into attn_masked_weights_native, on the kernels compiled with -march=native
// (tests/CMakeLists.txt). That one tests the kernels only (ATTN_MASKED_WEIGHTS_KERNELS_ONLY),
// where the exponentials are: a layer adds projections, not exponentials.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/kernels/softmax.hpp"
#ifndef ATTN_MASKED_WEIGHTS_KERNELS_ONLY
#include "attn/layers/multi_head_attention.hpp"
#endif

namespace {

template <typename Scalar>
class MaskedWeights : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(MaskedWeights, Scalars, );  // the empty name generator keeps -Wpedantic quiet

template <typename Scalar, int Rank>
attn::Tensor<Scalar, Rank> uniform(const attn::Shape<Rank>& shape, std::uint64_t seed) {
  attn::Tensor<Scalar, Rank> t(shape);
  attn::Generator generator(seed);
  for (attn::Index i = 0; i < t.numel(); ++i) t.data()[i] = generator.uniform<Scalar>(-1, 1);
  return t;
}

TYPED_TEST(MaskedWeights, SoftmaxOfMinusInfinityIsZero) {
  using Scalar = TypeParam;
  const Scalar inf = std::numeric_limits<Scalar>::infinity();
  attn::Tensor<Scalar, 2> logits({2, 4}, {Scalar(0.5), -inf, Scalar(-1), -inf,  //
                                          -inf, -inf, -inf, -inf});
  attn::Tensor<Scalar, 2> weights({2, 4});
  attn::softmax(logits.view(), weights.view());
  EXPECT_EQ(weights(0, 1), Scalar(0));
  EXPECT_EQ(weights(0, 3), Scalar(0));
  for (attn::Index j = 0; j < 4; ++j) EXPECT_EQ(weights(1, j), Scalar(0));  // fully masked row
}

TYPED_TEST(MaskedWeights, ReferencePathWeightsAreZeroAboveTheDiagonal) {
  using Scalar = TypeParam;
  const auto q = uniform<Scalar, 2>({5, 4}, 1), k = uniform<Scalar, 2>({7, 4}, 2),
             v = uniform<Scalar, 2>({7, 3}, 3);
  attn::Tensor<Scalar, 2> out({5, 3}), weights({5, 7});
  attn::AttentionOptions<Scalar> options;
  options.mask = attn::Mask::causal();
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                     weights.view());
  for (attn::Index i = 0; i < 5; ++i) {
    for (attn::Index j = i + 1; j < 7; ++j) EXPECT_EQ(weights(i, j), Scalar(0)) << i << j;
  }
}

// Query 0 sees key 0 only, whose value is 0; the masked keys' values are huge. Any nonzero
// masked weight shows in the output (2.9e-39 x 1e30 = 2.9e-9 in float).
TYPED_TEST(MaskedWeights, MaskedValuesDoNotLeakOnEitherPath) {
  using Scalar = TypeParam;
  const Scalar huge = std::is_same_v<Scalar, float> ? Scalar(1e30) : Scalar(1e300);
  const auto q = uniform<Scalar, 2>({3, 4}, 4), k = uniform<Scalar, 2>({3, 4}, 5);
  attn::Tensor<Scalar, 2> v({3, 2}, {0, 0, huge, huge, huge, huge});
  for (auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
    attn::AttentionOptions<Scalar> options;
    options.mask = attn::Mask::causal();
    options.path = path;
    attn::Tensor<Scalar, 2> out({3, 2});
    attn::AttentionCache<Scalar> cache;
    attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options, {},
                                       &cache);
    EXPECT_EQ(out(0, 0), Scalar(0)) << "path " << static_cast<int>(path);
    EXPECT_EQ(out(0, 1), Scalar(0)) << "path " << static_cast<int>(path);

    // Backward with a gradient on query 0 only: keys 1 and 2 are masked for it, so their value
    // gradients are exactly 0.
    attn::Tensor<Scalar, 2> grad_out({3, 2}, {1, 1, 0, 0, 0, 0});
    attn::Tensor<Scalar, 2> grad_q({3, 4}), grad_k({3, 4}), grad_v({3, 2});
    attn::scaled_dot_product_attention_backward(q.view(), k.view(), v.view(), out.view(),
                                                grad_out.view(), grad_q.view(), grad_k.view(),
                                                grad_v.view(), options.mask, cache);
    for (attn::Index j = 1; j < 3; ++j) {
      EXPECT_EQ(grad_v(j, 0), Scalar(0)) << "key " << j << ", path " << static_cast<int>(path);
      EXPECT_EQ(grad_v(j, 1), Scalar(0)) << "key " << j << ", path " << static_cast<int>(path);
    }
  }
}

#ifndef ATTN_MASKED_WEIGHTS_KERNELS_ONLY
TYPED_TEST(MaskedWeights, MultiHeadAttentionWeightsAreZeroAboveTheDiagonal) {
  using Scalar = TypeParam;
  const attn::MultiHeadAttention<Scalar> mha(6, 8, 16, Scalar(0), 2, true, attn::Generator(7));
  const auto x = uniform<Scalar, 3>({2, 9, 6}, 6);
  const auto [context, weights] = mha.forward_with_weights(x.view());
  for (attn::Index b = 0; b < 2; ++b) {
    for (attn::Index h = 0; h < 2; ++h) {
      for (attn::Index i = 0; i < 9; ++i) {
        for (attn::Index j = i + 1; j < 9; ++j) EXPECT_EQ(weights(b, h, i, j), Scalar(0));
      }
    }
  }
}
#endif

}  // namespace
