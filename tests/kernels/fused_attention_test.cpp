// The fused path (tiled, online softmax) against the reference path (materialised scores), over
// a sweep of odd sizes, T != S, every mask kind, strided inputs and fully masked rows.
#include "attn/kernels/fused_attention.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/view_ops.hpp"
#include "support/attention_bounds.hpp"
#include "support/expect_error.hpp"
#include "support/normwise.hpp"

namespace {

enum class MaskCase { none, causal, causal_ahead, matrix };

void run_case(attn::Index T, attn::Index S, attn::Index D, MaskCase mask_case,
              attn::Generator& generator) {
  const attn::Index heads = 2, Dv = D + 3;
  // Queries, keys and values live in (T or S, heads * dim) buffers with padding columns, so the
  // kernel reads strided head views, as from a fused projection.
  attn::Tensor<float, 2> qbuf({T, heads * D + 5}), kbuf({S, heads * D + 1}),
      vbuf({S, heads * Dv + 2});
  for (auto* buffer : {&qbuf, &kbuf, &vbuf}) {
    for (attn::Index i = 0; i < buffer->numel(); ++i)
      buffer->data()[i] = generator.uniform<float>(-2, 2);
  }
  auto heads_of = [&](attn::Tensor<float, 2>& buffer, attn::Index tokens, attn::Index dim) {
    const auto cols = attn::slice(buffer.view(), 1, 0, heads * dim);
    const attn::TensorView<float, 3> as3(cols.data(), {1, tokens, heads * dim},
                                         {0, cols.stride(0), 1});
    return attn::select(attn::split_heads(as3, heads), 0, 0);  // (heads, tokens, dim), strided
  };
  const auto q = heads_of(qbuf, T, D), k = heads_of(kbuf, S, D), v = heads_of(vbuf, S, Dv);

  attn::Tensor<bool, 2> matrix({T, S});
  attn::AttentionOptions<float> options;
  switch (mask_case) {
    case MaskCase::none:
      break;
    case MaskCase::causal:
      options.mask = attn::Mask::causal();
      break;
    case MaskCase::causal_ahead:
      options.mask = attn::Mask::causal(S - T);
      break;
    case MaskCase::matrix:
      for (attn::Index i = 0; i < matrix.numel(); ++i)
        matrix.data()[i] = generator.uniform<float>() < 0.3f;
      for (attn::Index j = 0; j < S; ++j) matrix(T / 2, j) = true;  // one fully masked query
      options.mask = attn::Mask::matrix(matrix.view());
      break;
  }
  attn::Tensor<float, 3> fused({heads, T, Dv}, NAN), reference({heads, T, Dv}, NAN);
  options.path = attn::AttentionPath::reference;
  attn::scaled_dot_product_attention(q, k, v, reference.view(), options);
  options.path = attn::AttentionPath::fused;
  attn::scaled_dot_product_attention(q, k, v, fused.view(), options);
  // Normwise against the output's problem scale, ||out||_F <= vmax sqrt(T) per head (a softmax
  // row averages value rows), not against the output itself: averaging many values of both
  // signs makes it much smaller than its terms. Tolerance 4 eps (max |logit| + sqrt(max(T, S,
  // D, Dv))) (support/normwise.hpp).
  const auto bounds = attn_test::attention_forward_bounds(q, k, v, 1 / std::sqrt(double(D)));
  EXPECT_TRUE(attn_test::close_normwise(
      fused, reference, bounds.out,
      attn_test::rounding_tolerance<float>(bounds.logits, bounds.length),
      "T " + std::to_string(T) + " S " + std::to_string(S) + " D " + std::to_string(D) + " mask " +
          std::to_string(static_cast<int>(mask_case))));
  if (mask_case == MaskCase::matrix) {
    for (attn::Index h = 0; h < heads; ++h)
      for (attn::Index d = 0; d < Dv; ++d) ASSERT_EQ(fused(h, T / 2, d), 0.0f);
  }
}

TEST(FusedAttention, AgreesWithReferenceOverTheSweep) {
  attn::Generator generator(42);
  const attn::Index sizes[] = {1, 3, 17, 64, 65, 257};
  const attn::Index dims[] = {1, 8, 64, 80};
  for (attn::Index T : sizes)
    for (attn::Index S : sizes)
      for (attn::Index D : dims)
        for (MaskCase mask :
             {MaskCase::none, MaskCase::causal, MaskCase::causal_ahead, MaskCase::matrix})
          run_case(T, S, D, mask, generator);
}

TEST(FusedAttention, LogSumExpIsKeptPerRow) {
  // q = 0: every score is 0, so each row's log-sum-exp is log(number of visible keys).
  attn::Tensor<double, 2> q({5, 4}), k({7, 4}, 1.0), v({7, 2}, 1.0), out({5, 2});
  double lse[5];
  const attn::detail::ScoreMasking<double> causal(attn::Mask::causal(), {}, 1, 1);
  attn::detail::fused_attention<double, 2>(q.view(), k.view(), v.view(), out.view(), 0.5, false,
                                           causal, nullptr, lse);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(lse[i], std::log(i + 1.0), 1e-15);
}

TEST(FusedAttention, RefusesWhatOnlyTheReferenceProvides) {
  attn::Tensor<float, 2> q({3, 4}), k({3, 4}), v({3, 4}), out({3, 4}), weights({3, 3});
  attn::AttentionOptions<float> options;
  options.path = attn::AttentionPath::fused;
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(),
                                                       options, weights.view()),
                    std::invalid_argument, {"fused path does not return attention weights"});
}

}  // namespace
