#include "attn/kernels/mask.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "attn/tensor/eigen_interop.hpp"
#include "support/expect_error.hpp"

namespace {

TEST(Mask, CausalMaskIsTheBooksTriu) {
  const auto mask = attn::causal_mask(3, 4);
  const bool expected[3][4] = {{0, 1, 1, 1}, {0, 0, 1, 1}, {0, 0, 0, 1}};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 4; ++j) EXPECT_EQ(mask(i, j), expected[i][j]) << i << "," << j;
  }
}

TEST(Mask, KindsAgreeOnWhatIsMasked) {
  const auto matrix = attn::causal_mask(5, 7);
  const auto causal = attn::Mask::causal();
  const auto explicit_mask = attn::Mask::matrix(matrix.view());
  const auto ahead = attn::Mask::causal(2);
  for (attn::Index i = 0; i < 5; ++i) {
    for (attn::Index j = 0; j < 7; ++j) {
      EXPECT_EQ(causal.masked(i, j), j > i);
      EXPECT_EQ(explicit_mask.masked(i, j), j > i);
      EXPECT_EQ(ahead.masked(i, j), j > i + 2);
      EXPECT_FALSE(attn::Mask::none().masked(i, j));
    }
  }
}

TEST(Mask, ApplySetsMinusInfinity) {
  attn::RowMatrix<float> scores = attn::RowMatrix<float>::Ones(3, 3);
  attn::Mask::causal().apply(scores);
  EXPECT_EQ(scores(0, 0), 1.0f);
  EXPECT_TRUE(std::isinf(scores(0, 1)) && scores(0, 1) < 0);
  EXPECT_TRUE(std::isinf(scores(1, 2)));
  EXPECT_EQ(scores(2, 2), 1.0f);
}

TEST(Mask, ExplicitShapeIsChecked) {
  const auto matrix = attn::causal_mask(5, 7);
  ATTN_EXPECT_ERROR(attn::Mask::matrix(matrix.view()).check_shape(5, 6, "test"), attn::ShapeError,
                    {"(5, 7)", "(5, 6)"});
}

}  // namespace
