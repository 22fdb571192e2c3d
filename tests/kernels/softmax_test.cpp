#include "attn/kernels/softmax.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attn/tensor/tensor.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

// The book's attention scores for query 2 ("journey"), section 3.3.1.
const attn::Tensor<float, 2> kScores2({1, 6},
                                      {0.9544f, 1.4950f, 1.4754f, 0.8434f, 0.7070f, 1.0865f});
// A softmax row has |P_i| <= sum_j P_ij = 1: the problem scale of one row is 1. Tolerance 4 eps
// (max |logit| + sqrt(6)) (support/normwise.hpp).
const double kRowTolerance = attn_test::rounding_tolerance<float>(1.4950, 6);

TEST(Softmax, BookWeightsForQuery2) {
  attn::Tensor<float, 2> weights({1, 6});
  attn::softmax(kScores2.view(), weights.view());
  const attn::Tensor<float, 2> book({1, 6}, {0.1385f, 0.2379f, 0.2333f, 0.1240f, 0.1082f, 0.1581f});
  EXPECT_TRUE(attn_test::all_close(weights.view(), book.view(), 5e-5));  // book prints 4 decimals
  EXPECT_NEAR(as_matrix(weights.view()).sum(), 1.0f, kRowTolerance);
}

TEST(Softmax, NaiveAgreesOnSmallLogits) {
  attn::Tensor<float, 2> stable({1, 6}), naive({1, 6});
  attn::softmax(kScores2.view(), stable.view());
  attn::softmax_naive(kScores2.view(), naive.view());
  EXPECT_TRUE(attn_test::close_normwise(naive, stable, 1.0, kRowTolerance));
}

TEST(Softmax, StableSurvivesHugeLogitsWhereNaiveOverflows) {
  const attn::Tensor<float, 2> logits({2, 3}, {1e4f, 1e4f - 1.0f, -1e4f, 3e38f, -3e38f, 0.0f});
  attn::Tensor<float, 2> stable({2, 3}), naive({2, 3});
  attn::softmax(logits.view(), stable.view());
  // softmax([0, -1, -2e4]) = [1/(1+e^-1), e^-1/(1+e^-1), 0]
  const float e = std::exp(-1.0f);
  const attn::Tensor<float, 2> expected({2, 3}, {1 / (1 + e), e / (1 + e), 0, 1, 0, 0});
  // Two rows, so ||P||_F <= sqrt(2). The logits minus their row maximum (0, -1, -2e4 and 0,
  // -inf, -3e38) are exact, so the logit term of the tolerance is 1, not 3e38.
  EXPECT_TRUE(attn_test::close_normwise(stable, expected, std::sqrt(2.0),
                                        attn_test::rounding_tolerance<float>(1, 3)));
  attn::softmax_naive(logits.view(), naive.view());
  EXPECT_TRUE(std::isnan(naive(0, 0)));  // exp(1e4) = inf, inf / inf
}

TEST(Softmax, FullyMaskedRowIsZeroNotNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  attn::Tensor<float, 2> logits({2, 3}, {-inf, -inf, -inf, 0.0f, -inf, 0.0f});
  attn::softmax(logits.view(), logits.view());  // in place
  const attn::Tensor<float, 2> expected({2, 3}, {0, 0, 0, 0.5f, 0, 0.5f});
  EXPECT_TRUE(attn_test::all_close(logits.view(), expected.view(), 0.0));
}

TEST(Softmax, NaNStaysInItsRow) {
  attn::Tensor<double, 2> logits({2, 2}, {NAN, 1.0, 1.0, 1.0});
  attn::softmax(logits.view(), logits.view());
  EXPECT_TRUE(std::isnan(logits(0, 1)));
  EXPECT_EQ(logits(1, 0), 0.5);
}

TEST(Softmax, ShapeMismatchIsAnError) {
  attn::Tensor<float, 2> out({6, 1});
  ATTN_EXPECT_ERROR(attn::softmax(kScores2.view(), out.view()), attn::ShapeError,
                    {"(6, 1)", "(1, 6)"});
}

}  // namespace
