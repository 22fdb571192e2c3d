// cross_entropy against F.cross_entropy (mean reduction): loss and gradient, with one row of
// logits near 40 where a naive exp would lose the answer.
#include "attn/losses/cross_entropy.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "support/expect_error.hpp"
#include "support/fixtures.hpp"

namespace {

using attn::Index;
using attn_test::all_close;
using attn_test::fixture_tensor;

template <typename Scalar>
void check_against_pytorch(const std::string& prefix, double tolerance) {
  const auto io = attn_test::load_io("cross_entropy");
  const auto targets = attn_test::fixture_indices<1>(io, "targets");
  const auto logits = fixture_tensor<Scalar, 2>(io, prefix + "logits");
  attn::Tensor<Scalar, 2> grad(logits.shape());
  const Scalar loss = attn::cross_entropy(logits.view(), targets.view(), grad.view());
  const Scalar expected = fixture_tensor<Scalar, 1>(io, prefix + "loss")(0);
  EXPECT_NEAR(loss, expected, tolerance);
  EXPECT_TRUE(all_close(grad.view(), fixture_tensor<Scalar, 2>(io, prefix + "grad.logits").view(),
                        tolerance));
  EXPECT_EQ(attn::cross_entropy(logits.view(), targets.view()), loss) << "grad must not matter";
}

TEST(CrossEntropy, FloatMatchesPyTorch) {
  check_against_pytorch<float>("", 1e-6);
}
TEST(CrossEntropy, DoubleMatchesPyTorch) {
  check_against_pytorch<double>("f64.", 1e-12);
}

TEST(CrossEntropy, HugeLogitsStayFinite) {
  const attn::Tensor<float, 2> logits({1, 3}, {3e38f, -3e38f, 0.f});
  const attn::Tensor<Index, 1> targets({1}, {2});
  attn::Tensor<float, 2> grad(logits.shape());
  // logsumexp = 3e38 exactly in float, so the loss is 3e38 - 0; a naive exp gives inf or NaN.
  EXPECT_EQ(attn::cross_entropy(logits.view(), targets.view(), grad.view()), 3e38f);
  EXPECT_EQ(grad(0, 0), 1.f);
  EXPECT_EQ(grad(0, 1), 0.f);
  EXPECT_EQ(grad(0, 2), -1.f);
}

TEST(CrossEntropy, NoRowsGiveZero) {
  const attn::Tensor<float, 2> logits({0, 4});
  const attn::Tensor<Index, 1> targets({0});
  EXPECT_EQ(attn::cross_entropy(logits.view(), targets.view()), 0.f);
}

TEST(CrossEntropy, RejectsBadInput) {
  const attn::Tensor<float, 2> logits({2, 3});
  const attn::Tensor<Index, 1> three({3}, {0, 1, 2});
  ATTN_EXPECT_ERROR(attn::cross_entropy(logits.view(), three.view()), std::invalid_argument,
                    {"logits", "(2, 3)", "targets", "(3)"});
  const attn::Tensor<Index, 1> out_of_range({2}, {0, 3});
  ATTN_EXPECT_ERROR(attn::cross_entropy(logits.view(), out_of_range.view()), std::out_of_range,
                    {"target 3", "row 1", "[0, 3)"});
  const attn::Tensor<Index, 1> targets({2}, {0, 1});
  attn::Tensor<float, 2> grad({3, 2});
  ATTN_EXPECT_ERROR(attn::cross_entropy(logits.view(), targets.view(), grad.view()),
                    std::invalid_argument, {"grad", "(3, 2)", "(2, 3)"});
}

}  // namespace
