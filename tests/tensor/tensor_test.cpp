#include "attn/tensor/tensor.hpp"

#include <gtest/gtest.h>

#include <cstdint>

#include "attn/tensor/view_ops.hpp"
#include "support/expect_error.hpp"

namespace {

TEST(Tensor, StartsZeroAndIsContiguous) {
  attn::Tensor<double, 3> t({1, 3, 7});
  EXPECT_EQ(t.numel(), 21);
  EXPECT_EQ(t.view().strides(), (attn::Shape<3>{21, 7, 1}));
  for (attn::Index i = 0; i < t.numel(); ++i) EXPECT_EQ(t.data()[i], 0.0);
}

TEST(Tensor, StorageIsAlignedForEigen) {
  const attn::Tensor<float, 2> t({3, 7});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % EIGEN_DEFAULT_ALIGN_BYTES, 0u);
}

TEST(Tensor, ValuesAreRowMajor) {
  attn::Tensor<float, 2> t({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t(1, 0), 4.0f);
  EXPECT_EQ(t.at(0, 2), 3.0f);
  t(1, 2) = 9.0f;
  EXPECT_EQ(t.view()(1, 2), 9.0f);
  ATTN_EXPECT_ERROR((attn::Tensor<float, 2>({2, 3}, {1, 2, 3})), attn::ShapeError,
                    {"(2, 3)", "6 elements", "3 values"});
  ATTN_EXPECT_ERROR(t.at(2, 0), attn::IndexError, {"index 2"});
}

TEST(Tensor, CopiesAStridedViewContiguously) {
  attn::Tensor<float, 2> t({2, 3}, {1, 2, 3, 4, 5, 6});
  const attn::Tensor<float, 2> transposed(attn::transpose(t.view(), 0, 1));
  EXPECT_EQ(transposed.shape(), (attn::Shape<2>{3, 2}));
  const float expected[] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(transposed.data()[i], expected[i]);
}

TEST(Tensor, FillAndConvertToViews) {
  attn::Tensor<float, 1> t({3}, 2.5f);
  const attn::TensorView<const float, 1> read_only = t;
  EXPECT_EQ(read_only(2), 2.5f);
  t.fill(-1.0f);
  EXPECT_EQ(read_only(0), -1.0f);
  EXPECT_THROW((attn::Tensor<float, 1>({-3})), std::invalid_argument);
}

}  // namespace
