// cross_entropy against F.cross_entropy (mean reduction): loss and gradient, with one row of
// logits near 40 where a naive exp would lose the answer.
#include "attn/losses/cross_entropy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn_test::fixture_tensor;

template <typename Scalar>
void check_against_pytorch(const std::string& prefix) {
  const auto io = attn_test::load_io("cross_entropy");
  const auto targets = attn_test::fixture_indices<1>(io, "targets");
  const auto logits = fixture_tensor<Scalar, 2>(io, prefix + "logits");
  attn::Tensor<Scalar, 2> grad(logits.shape());
  const Scalar loss = attn::cross_entropy(logits.view(), targets.view(), grad.view());
  const Scalar expected = fixture_tensor<Scalar, 1>(io, prefix + "loss")(0);
  // Problem scales. The loss is the mean over rows of logsumexp(x_r) - x_r[t_r], whose terms are
  // together at most 2 max |x| + log C. A row of the gradient, (softmax(x_r) - onehot(t_r)) / N,
  // has norm at most sqrt(2) / N, so ||grad||_F <= sqrt(2 / N); the softmax weights carry a
  // relative error of eps times the spread of their row's logits (max - min), the tolerance's logit
  // term.
  const Index N = logits.size(0), C = logits.size(1);
  double largest = 0, spread = 0;
  for (Index r = 0; r < N; ++r) {
    double lo = INFINITY, hi = -INFINITY;
    for (Index c = 0; c < C; ++c) {
      lo = std::min(lo, double(logits(r, c)));
      hi = std::max(hi, double(logits(r, c)));
      largest = std::max(largest, std::abs(double(logits(r, c))));
    }
    spread = std::max(spread, hi - lo);
  }
  EXPECT_TRUE(attn_test::close_normwise(std::vector<double>{loss}, std::vector<double>{expected},
                                        2 * largest + std::log(double(C)),
                                        attn_test::rounding_tolerance<Scalar>(0, C), "loss"));
  EXPECT_TRUE(attn_test::close_normwise(grad, fixture_tensor<Scalar, 2>(io, prefix + "grad.logits"),
                                        std::sqrt(2.0 / double(N)),
                                        attn_test::rounding_tolerance<Scalar>(spread, C), "grad"));
  EXPECT_EQ(attn::cross_entropy(logits.view(), targets.view()), loss) << "grad must not matter";
}

TEST(CrossEntropy, FloatMatchesPyTorch) {
  check_against_pytorch<float>("");
}
TEST(CrossEntropy, DoubleMatchesPyTorch) {
  check_against_pytorch<double>("f64.");
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
