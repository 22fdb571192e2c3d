// Backward of the shared kernel: central differences in double for both paths and every mask
// kind (T != S, a fully masked query, dropout), and the fused backward against the reference.
#include <gtest/gtest.h>

#include <attn/kernels/scaled_dot_product_attention.hpp>
#include <cmath>
#include <string>

#include "support/attention_bounds.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/normwise.hpp"

namespace {

using attn_test::random_tensor;

enum class BackwardMaskCase { none, causal, causal_ahead, matrix_with_empty_row };

void check_kernel(BackwardMaskCase mask_case, attn::AttentionPath path, double dropout) {
  attn::Generator generator(5);
  const attn::Index T = 5, S = 7;
  auto q = random_tensor<3>({2, T, 4}, generator), k = random_tensor<3>({2, S, 4}, generator);
  auto v = random_tensor<3>({2, S, 3}, generator);
  const auto R = random_tensor<3>({2, T, 3}, generator);
  attn::Tensor<bool, 2> matrix({T, S});
  attn::AttentionOptions<double> options;
  options.path = path;
  switch (mask_case) {
    case BackwardMaskCase::none:
      break;
    case BackwardMaskCase::causal:
      options.mask = attn::Mask::causal();
      break;
    case BackwardMaskCase::causal_ahead:
      options.mask = attn::Mask::causal(S - T);
      break;
    case BackwardMaskCase::matrix_with_empty_row:
      for (attn::Index i = 0; i < matrix.numel(); ++i) matrix.data()[i] = (i * 7) % 3 == 0;
      for (attn::Index j = 0; j < S; ++j) matrix(3, j) = true;
      options.mask = attn::Mask::matrix(matrix.view());
      break;
  }
  attn::Generator dropout_generator(11);
  options.dropout = dropout;
  options.training = dropout > 0;
  options.generator = &dropout_generator;
  const auto loss = [&] {
    attn::Generator same(11);  // the same dropout mask on every evaluation
    auto repeat = options;
    repeat.generator = &same;
    attn::Tensor<double, 3> out({2, T, 3});
    attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), repeat);
    double sum = 0;
    for (attn::Index i = 0; i < out.numel(); ++i) sum += out.data()[i] * R.data()[i];
    return sum;
  };
  attn::AttentionCache<double> cache;
  attn::Tensor<double, 3> out({2, T, 3});
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options, {}, &cache);
  attn::Tensor<double, 3> dq(q.shape()), dk(k.shape()), dv(v.shape());
  attn::scaled_dot_product_attention_backward(q.view(), k.view(), v.view(), out.view(), R.view(),
                                              dq.view(), dk.view(), dv.view(), options.mask, cache);
  using attn_test::gradients_agree;
  using attn_test::numeric_gradient;
  const double loss_scale = attn_test::product_loss_scale(out, R);
  EXPECT_TRUE(
      gradients_agree(dq.data(), numeric_gradient(q.data(), q.numel(), loss), loss_scale, "q"));
  EXPECT_TRUE(
      gradients_agree(dk.data(), numeric_gradient(k.data(), k.numel(), loss), loss_scale, "k"));
  EXPECT_TRUE(
      gradients_agree(dv.data(), numeric_gradient(v.data(), v.numel(), loss), loss_scale, "v"));
  if (mask_case == BackwardMaskCase::matrix_with_empty_row) {
    for (attn::Index b = 0; b < 2; ++b)
      for (attn::Index d = 0; d < 4; ++d) EXPECT_EQ(dq(b, 3, d), 0.0);  // the empty query
  }
}

TEST(AttentionBackward, ReferencePathByFiniteDifferences) {
  for (auto mask : {BackwardMaskCase::none, BackwardMaskCase::causal,
                    BackwardMaskCase::causal_ahead, BackwardMaskCase::matrix_with_empty_row}) {
    SCOPED_TRACE(static_cast<int>(mask));
    check_kernel(mask, attn::AttentionPath::reference, 0.0);
  }
}

TEST(AttentionBackward, FusedPathByFiniteDifferences) {
  for (auto mask : {BackwardMaskCase::none, BackwardMaskCase::causal,
                    BackwardMaskCase::causal_ahead, BackwardMaskCase::matrix_with_empty_row}) {
    SCOPED_TRACE(static_cast<int>(mask));
    check_kernel(mask, attn::AttentionPath::fused, 0.0);
  }
}

TEST(AttentionBackward, DropoutReplaysTheForwardMask) {
  check_kernel(BackwardMaskCase::causal, attn::AttentionPath::reference, 0.3);
}

// sum_j dk_j of each problem, (batch, D), summed in double: zero in exact arithmetic
// (attention_bounds.hpp).
attn::Tensor<double, 2> key_gradient_sums(const attn::Tensor<float, 3>& dk) {
  attn::Tensor<double, 2> sums({dk.size(0), dk.size(2)}, 0.0);
  for (attn::Index b = 0; b < dk.size(0); ++b)
    for (attn::Index j = 0; j < dk.size(1); ++j)
      for (attn::Index d = 0; d < dk.size(2); ++d) sums(b, d) += dk(b, j, d);
  return sums;
}

TEST(AttentionBackward, FusedEqualsReferenceOnTheSweep) {
  using attn_test::close_normwise;
  using attn_test::negligible;
  attn::Generator generator(9);
  for (attn::Index T : {1, 3, 17, 65, 257}) {
    for (attn::Index S : {1, 17, 64, 257}) {
      for (attn::Index D : {1, 8, 64}) {
        for (int causal = 0; causal < 2; ++causal) {
          attn::Tensor<float, 3> q({2, T, D}), k({2, S, D}), v({2, S, D + 1}), R({2, T, D + 1});
          for (auto* t : {&q, &k, &v, &R}) {
            for (attn::Index i = 0; i < t->numel(); ++i)
              t->data()[i] = generator.uniform<float>(-2, 2);
          }
          attn::Tensor<float, 3> grads[2][3];
          for (int path = 0; path < 2; ++path) {
            attn::AttentionOptions<float> options;
            if (causal) options.mask = attn::Mask::causal();
            options.path = path ? attn::AttentionPath::fused : attn::AttentionPath::reference;
            attn::AttentionCache<float> cache;
            attn::Tensor<float, 3> out(R.shape());
            attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                               {}, &cache);
            grads[path][0] = attn::Tensor<float, 3>(q.shape());
            grads[path][1] = attn::Tensor<float, 3>(k.shape());
            grads[path][2] = attn::Tensor<float, 3>(v.shape());
            attn::scaled_dot_product_attention_backward(
                q.view(), k.view(), v.view(), out.view(), R.view(), grads[path][0].view(),
                grads[path][1].view(), grads[path][2].view(), options.mask, cache);
          }
          // Each gradient normwise against its problem scale (attention_bounds.hpp): dq against
          // 2 |scale| vmax kmax ||dO||, dk against 2 |scale| vmax sum_i |do_i| |q_i|, dv against
          // sum_i |do_i|; tolerance 4 eps (max |logit| + sqrt(max(T, S, D + 1))).
          const auto bounds = attn_test::attention_bounds(q, k, v, R, 1 / std::sqrt(double(D)));
          const double tolerance =
              attn_test::rounding_tolerance<float>(bounds.logits, bounds.length);
          const std::string where = " (T " + std::to_string(T) + " S " + std::to_string(S) + " D " +
                                    std::to_string(D) + " causal " + std::to_string(causal) + ")";
          if (S == 1 || (causal && T == 1)) {
            // One visible key per query (S = 1, or the causal mask's first row when T = 1):
            // every softmax weight is exactly 1, so dS = 0 and dq and dk are zero in exact
            // arithmetic. Each path must give rounding noise only (comparing the two would
            // compare noise with noise).
            for (int path = 0; path < 2; ++path) {
              const std::string name = path ? "fused" : "reference";
              EXPECT_TRUE(
                  negligible(grads[path][0], bounds.grad_q, tolerance, name + " dq" + where));
              EXPECT_TRUE(
                  negligible(grads[path][1], bounds.grad_k, tolerance, name + " dk" + where));
            }
          } else {
            EXPECT_TRUE(close_normwise(grads[1][0], grads[0][0], bounds.grad_q, tolerance,
                                       "fused dq" + where));
            EXPECT_TRUE(close_normwise(grads[1][1], grads[0][1], bounds.grad_k, tolerance,
                                       "fused dk" + where));
          }
          // For every S, sum_j dk_j is zero in exact arithmetic (softmax ignores one shift of
          // every key), the kernel-level reason for the layers' vanishing key-bias gradients.
          for (int path = 0; path < 2; ++path) {
            EXPECT_TRUE(negligible(key_gradient_sums(grads[path][1]), bounds.grad_k, tolerance,
                                   (path ? "fused sum_j dk_j" : "reference sum_j dk_j") + where));
          }
          EXPECT_TRUE(close_normwise(grads[1][2], grads[0][2], bounds.grad_v, tolerance,
                                     "fused dv" + where));
        }
      }
    }
  }
}

TEST(AttentionBackward, GradientShapesAreChecked) {
  attn::Tensor<float, 2> q({3, 4}), k({3, 4}), v({3, 2}), out({3, 2}), dout({3, 2});
  attn::Tensor<float, 2> dq({3, 4}), dk({3, 4}), dv_bad({3, 3});
  attn::AttentionCache<float> cache;
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), {}, {}, &cache);
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention_backward(
                        q.view(), k.view(), v.view(), out.view(), dout.view(), dq.view(), dk.view(),
                        dv_bad.view(), attn::Mask::none(), cache),
                    attn::ShapeError, {"grad_v has shape (3, 3)", "(3, 2)"});
}

}  // namespace
