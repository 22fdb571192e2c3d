// Numerical edge cases: logits at the edge of float's range, fully masked rows, NaN confined to
// what it touches, and float agreeing with double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attn/attn.hpp"
#include "support/attention_bounds.hpp"
#include "support/layer_fixture.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn::Tensor;
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr attn::AttentionPath kPaths[] = {attn::AttentionPath::reference,
                                          attn::AttentionPath::fused};

// softmax([a, b, c]) with the values chosen so that exp of any of them overflows or underflows.
TEST(NumericalEdges, SoftmaxOfHugeLogitsIsFiniteAndExact) {
  const Tensor<float, 2> logits({4, 3}, {1e4f, 1e4f - 1, -1e4f,  //
                                         3e38f, -3e38f, 0.f,     //
                                         3e38f, 3e38f, -3e38f,   //
                                         -3e38f, -3e38f, -3e38f});
  Tensor<float, 2> weights({4, 3});
  attn::softmax(logits.view(), weights.view());
  const float e = std::exp(-1.f);
  const Tensor<float, 2> expected({4, 3}, {1 / (1 + e), e / (1 + e), 0.f,  //
                                           1.f, 0.f, 0.f,                  //
                                           0.5f, 0.5f, 0.f,                //
                                           1 / 3.f, 1 / 3.f, 1 / 3.f});
  // Four softmax rows: ||P||_F <= 2. The logits minus their row maximum are exact (or overflow
  // to -inf, whose weight is exactly 0), so the logit term of the tolerance is 1, not 3e38.
  EXPECT_TRUE(attn_test::close_normwise(weights, expected, 2.0,
                                        attn_test::rounding_tolerance<float>(1, 3)));
}

// The same logits reached through the kernel (scale * q k^T), on both paths.
TEST(NumericalEdges, AttentionWithHugeLogitsIsFiniteAndExact) {
  const Tensor<float, 2> q({2, 1}, {1.f, -1.f});
  const Tensor<float, 2> k({3, 1}, {1e4f, 1e4f - 1, -1e4f});
  const Tensor<float, 2> v({3, 2}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  const float e = std::exp(-1.f);
  for (float scale : {1.f, 3e34f}) {
    for (auto path : kPaths) {
      attn::AttentionOptions<float> options;
      options.scale = scale;
      options.path = path;
      Tensor<float, 2> out({2, 2});
      attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options);
      // Query 0 picks keys 0 and 1 (or only key 0 when the scale makes the gap 3e34); query 1
      // picks key 2.
      const float w0 = scale == 1.f ? 1 / (1 + e) : 1.f, w1 = 1 - w0;
      const Tensor<float, 2> expected({2, 2}, {w0 * 1 + w1 * 3, w0 * 2 + w1 * 4, 5.f, 6.f});
      // Against ||out||_F <= vmax sqrt(T) (attention_bounds.hpp). The differences of the logits
      // are exact here (integers at scale 1; at scale 3e34 the gap of 3e34 makes the weights
      // exactly one-hot), so the logit term of the tolerance is 1, not |scale q k| = 3e38.
      const auto bounds = attn_test::attention_forward_bounds(q, k, v, scale);
      EXPECT_TRUE(attn_test::close_normwise(out, expected, bounds.out,
                                            attn_test::rounding_tolerance<float>(1, 3)))
          << "scale " << scale << (path == attn::AttentionPath::fused ? " fused" : " reference");
    }
  }
}

// A query that may see no key: zeros forward, zero gradients backward, on both paths.
TEST(NumericalEdges, FullyMaskedRowGivesZerosAndZeroGradients) {
  attn::Generator generator(5);
  Tensor<float, 2> q({3, 4}), k({5, 4}), v({5, 2}), grad_out({3, 2});
  for (auto* t : {&q, &k, &v}) {
    for (Index i = 0; i < t->numel(); ++i) t->data()[i] = generator.uniform<float>(-1, 1);
  }
  for (Index i = 0; i < grad_out.numel(); ++i) grad_out.data()[i] = 1.f;
  Tensor<bool, 2> masked({3, 5}, false);
  for (Index j = 0; j < 5; ++j) masked(1, j) = true;  // query 1 sees nothing
  for (auto path : kPaths) {
    attn::AttentionOptions<float> options;
    options.mask = attn::Mask::matrix(masked.view());
    options.path = path;
    attn::AttentionCache<float> cache;
    Tensor<float, 2> out({3, 2}), dq({3, 4}), dk({5, 4}), dv({5, 2});
    attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options, {},
                                       &cache);
    EXPECT_EQ(out(1, 0), 0.f);
    EXPECT_EQ(out(1, 1), 0.f);
    attn::scaled_dot_product_attention_backward<float, 2>(q.view(), k.view(), v.view(), out.view(),
                                                          grad_out.view(), dq.view(), dk.view(),
                                                          dv.view(), options.mask, cache);
    for (Index d = 0; d < 4; ++d) EXPECT_EQ(dq(1, d), 0.f) << "dq of the masked query";
    for (float value : {out(0, 0), out(2, 1), dq(0, 0), dk(4, 3), dv(2, 1)}) {
      EXPECT_TRUE(std::isfinite(value));
    }
  }
}

// Documented behaviour: a NaN in query i makes output row i NaN and no other; a NaN anywhere in
// one sequence of a batch leaves every other sequence untouched. (Within the sequence, rows the
// mask hides from the NaN token may turn NaN too: 0 * NaN = NaN in weights x values, as in
// PyTorch.)
TEST(NumericalEdges, NaNStaysInTheRowsAndSequencesItTouches) {
  attn::Generator generator(9);
  Tensor<float, 3> q({2, 6, 4}), k({2, 6, 4}), v({2, 6, 4});
  for (auto* t : {&q, &k, &v}) {
    for (Index i = 0; i < t->numel(); ++i) t->data()[i] = generator.uniform<float>(-1, 1);
  }
  q(0, 3, 1) = kNaNf;
  for (auto path : kPaths) {
    attn::AttentionOptions<float> options;
    options.mask = attn::Mask::causal();
    options.path = path;
    Tensor<float, 3> out({2, 6, 4});
    attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options);
    for (Index b = 0; b < 2; ++b) {
      for (Index i = 0; i < 6; ++i) {
        const bool poisoned = b == 0 && i == 3;
        for (Index d = 0; d < 4; ++d) EXPECT_EQ(std::isnan(out(b, i, d)), poisoned) << b << i << d;
      }
    }
  }
  attn::MultiHeadAttention<float> mha(4, 4, 6, 0.f, 2);
  mha.eval();
  Tensor<float, 3> x(q);
  x(0, 3, 1) = kNaNf;
  x(1, 3, 1) = 0.5f;
  const auto out = mha.forward(x.view());
  for (Index i = 0; i < 6; ++i) {
    for (Index d = 0; d < 4; ++d)
      EXPECT_TRUE(std::isfinite(out(1, i, d))) << "sequence 1 row " << i;
  }
  for (Index i = 3; i < 6; ++i) {
    for (Index d = 0; d < 4; ++d) EXPECT_TRUE(std::isnan(out(0, i, d))) << "row " << i;
  }
}

// The same layer in float and double (float weights widened): outputs agree to float precision.
TEST(NumericalEdges, FloatAndDoubleAgreeToFloatPrecision) {
  attn::MultiHeadAttention<float> f(16, 24, 32, 0.f, 4, true, attn::Generator(3));
  attn::MultiHeadAttention<double> d(16, 24, 32, 0.0, 4, true, attn::Generator(3));
  f.eval();
  d.eval();
  const auto state = attn::state_dict(f);
  attn::StateDict<double> widened;
  for (const auto& [name, tensor] : state) {
    widened[name] = {tensor.shape, std::vector<double>(tensor.values.begin(), tensor.values.end())};
  }
  attn::load_state_dict(d, widened);
  attn::Generator generator(4);
  Tensor<float, 3> xf({3, 32, 16});
  for (Index i = 0; i < xf.numel(); ++i) xf.data()[i] = generator.uniform<float>(-2, 2);
  Tensor<double, 3> xd(xf.shape());
  for (Index i = 0; i < xf.numel(); ++i) xd.data()[i] = xf.data()[i];
  // Against the layer's output scale ||Wo||_2 ||context||_F + sqrt(rows) |bo| (layer_scales),
  // to float's tolerance: the double run's own error is negligible.
  const attn_test::LayerScales scales = attn_test::layer_scales(state, xf, nullptr, 4);
  for (auto path : kPaths) {
    f.set_attention_path(path);
    d.set_attention_path(path);
    EXPECT_TRUE(attn_test::close_normwise(f.forward(xf.view()), d.forward(xd.view()), scales.out,
                                          scales.tolerance<float>()));
  }
}

}  // namespace
