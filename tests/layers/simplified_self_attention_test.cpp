#include "attn/layers/simplified_self_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "attn/kernels/mask.hpp"
#include "attn/kernels/softmax.hpp"
#include "support/book_inputs.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn_test::all_close;
constexpr double kBookTolerance = 5e-5;  // the book prints four decimals

TEST(SimplifiedSelfAttention, BookScoresWeightsAndContextVectors) {
  const auto inputs = attn_test::book_inputs();
  // Section 3.3.1-3.3.2, printed in the book.
  const attn::Tensor<float, 2> scores(
      {6, 6}, {0.9995f, 0.9544f, 0.9422f, 0.4753f, 0.4576f, 0.6310f, 0.9544f, 1.4950f, 1.4754f,
               0.8434f, 0.7070f, 1.0865f, 0.9422f, 1.4754f, 1.4570f, 0.8296f, 0.7154f, 1.0605f,
               0.4753f, 0.8434f, 0.8296f, 0.4937f, 0.3474f, 0.6565f, 0.4576f, 0.7070f, 0.7154f,
               0.3474f, 0.6654f, 0.2935f, 0.6310f, 1.0865f, 1.0605f, 0.6565f, 0.2935f, 0.9450f});
  const attn::Tensor<float, 2> weights(
      {6, 6}, {0.2098f, 0.2006f, 0.1981f, 0.1242f, 0.1220f, 0.1452f, 0.1385f, 0.2379f, 0.2333f,
               0.1240f, 0.1082f, 0.1581f, 0.1390f, 0.2369f, 0.2326f, 0.1242f, 0.1108f, 0.1565f,
               0.1435f, 0.2074f, 0.2046f, 0.1462f, 0.1263f, 0.1720f, 0.1526f, 0.1958f, 0.1975f,
               0.1367f, 0.1879f, 0.1295f, 0.1385f, 0.2184f, 0.2128f, 0.1420f, 0.0988f, 0.1896f});
  const attn::Tensor<float, 2> context(
      {6, 3}, {0.4421f, 0.5931f, 0.5790f, 0.4419f, 0.6515f, 0.5683f, 0.4431f, 0.6496f, 0.5671f,
               0.4304f, 0.6298f, 0.5510f, 0.4671f, 0.5910f, 0.5266f, 0.4177f, 0.6503f, 0.5645f});

  attn::Tensor<float, 2> our_weights({6, 6});
  const auto our_context = attn::simplified_self_attention(inputs.view(), our_weights.view());
  EXPECT_TRUE(all_close(our_weights.view(), weights.view(), kBookTolerance));
  EXPECT_TRUE(all_close(our_context.view(), context.view(), kBookTolerance));

  attn::Tensor<float, 2> our_scores({6, 6});
  attn::as_matrix(our_scores.view()) =
      attn::as_matrix(inputs.view()) * attn::as_matrix(inputs.view()).transpose();
  EXPECT_TRUE(all_close(our_scores.view(), scores.view(), kBookTolerance));
}

TEST(SimplifiedSelfAttention, BookQuery2StepByStep) {
  const auto inputs = attn_test::book_inputs();
  const auto query = attn::as_matrix(attn::slice(inputs.view(), 0, 1, 2));
  attn::Tensor<float, 2> scores({1, 6});
  attn::as_matrix(scores.view()) = query * attn::as_matrix(inputs.view()).transpose();
  const attn::Tensor<float, 2> book_scores({1, 6},
                                           {0.9544f, 1.4950f, 1.4754f, 0.8434f, 0.7070f, 1.0865f});
  EXPECT_TRUE(all_close(scores.view(), book_scores.view(), kBookTolerance));

  attn::Tensor<float, 2> by_sum({1, 6});
  attn::as_matrix(by_sum.view()) =
      attn::as_matrix(scores.view()) / attn::as_matrix(scores.view()).sum();
  const attn::Tensor<float, 2> book_by_sum({1, 6},
                                           {0.1455f, 0.2278f, 0.2249f, 0.1285f, 0.1077f, 0.1656f});
  EXPECT_TRUE(all_close(by_sum.view(), book_by_sum.view(), kBookTolerance));

  attn::Tensor<float, 2> weights({1, 6}), naive({1, 6});
  attn::softmax(scores.view(), weights.view());
  attn::softmax_naive(scores.view(), naive.view());
  const attn::Tensor<float, 2> book_weights({1, 6},
                                            {0.1385f, 0.2379f, 0.2333f, 0.1240f, 0.1082f, 0.1581f});
  EXPECT_TRUE(all_close(weights.view(), book_weights.view(), kBookTolerance));
  EXPECT_TRUE(all_close(naive.view(), book_weights.view(), kBookTolerance));

  attn::Tensor<float, 2> context({1, 3});
  attn::as_matrix(context.view()) =
      attn::as_matrix(weights.view()) * attn::as_matrix(inputs.view());
  const attn::Tensor<float, 2> book_context({1, 3}, {0.4419f, 0.6515f, 0.5683f});
  EXPECT_TRUE(all_close(context.view(), book_context.view(), kBookTolerance));
}

TEST(SimplifiedSelfAttention, MaskAfterSoftmaxThenRenormaliseEqualsMinusInfBeforeSoftmax) {
  // Section 3.5.1 shows both ways of hiding future tokens; they must agree.
  const auto inputs = attn_test::book_inputs();
  attn::Tensor<float, 2> scores({6, 6});
  attn::as_matrix(scores.view()) =
      attn::as_matrix(inputs.view()) * attn::as_matrix(inputs.view()).transpose();
  attn::Tensor<float, 2> renormalised({6, 6});
  attn::softmax(scores.view(), renormalised.view());
  auto r = attn::as_matrix(renormalised.view());
  for (attn::Index i = 0; i < 6; ++i) {
    for (attn::Index j = i + 1; j < 6; ++j) r(i, j) = 0;
    r.row(i) /= r.row(i).sum();
  }
  auto minus_inf = attn::as_matrix(scores.view());
  attn::Mask::causal().apply(minus_inf);
  attn::softmax(scores.view(), scores.view());
  // Six softmax rows: ||P||_F <= sqrt(6). Tolerance 4 eps (max |score| + sqrt(6)), the scores
  // being at most 1.495 (the book's table above).
  EXPECT_TRUE(attn_test::close_normwise(scores, renormalised, std::sqrt(6.0),
                                        attn_test::rounding_tolerance<float>(1.495, 6)));
}

}  // namespace
