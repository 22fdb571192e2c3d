#include "attn/tensor/eigen_interop.hpp"

#include <gtest/gtest.h>

#include <type_traits>

#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"
#include "support/expect_error.hpp"

namespace {

attn::Tensor<float, 2> counting(attn::Index rows, attn::Index cols) {
  attn::Tensor<float, 2> t({rows, cols});
  for (attn::Index i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i);
  return t;
}

TEST(AsMatrix, MapsAContiguousViewRowMajor) {
  auto t = counting(3, 7);
  const auto m = attn::as_matrix(t.view());
  EXPECT_EQ(m.rows(), 3);
  EXPECT_EQ(m.cols(), 7);
  EXPECT_EQ(m(2, 5), 19.0f);
  EXPECT_EQ(m.data(), t.data());
}

TEST(AsMatrix, WritesThroughTheMapAreVisibleInTheTensor) {
  auto t = counting(3, 7);
  auto m = attn::as_matrix(t.view());
  m(1, 3) = -1.0f;
  m.row(2).setZero();
  EXPECT_EQ(t(1, 3), -1.0f);
  EXPECT_EQ(t(2, 6), 0.0f);
  EXPECT_EQ(t(0, 6), 6.0f);
}

TEST(AsMatrix, ColumnSliceMapsWithOuterStride) {
  auto t = counting(3, 7);
  auto m = attn::as_matrix(attn::slice(t.view(), 1, 2, 5));
  EXPECT_EQ(m.outerStride(), 7);
  EXPECT_EQ(m(2, 0), 16.0f);  // 2*7 + 2
  m.setConstant(5.0f);
  EXPECT_EQ(t(1, 4), 5.0f);
  EXPECT_EQ(t(1, 5), 12.0f);  // just outside the slice: untouched
}

TEST(AsMatrix, HeadOfASplitMapsWithoutCopy) {
  attn::Tensor<float, 3> x({1, 3, 10});
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i);
  const auto head = attn::select(attn::select(attn::split_heads(x.view(), 2), 0, 0), 0, 1);
  const auto m = attn::as_matrix(head);  // tokens x head_dim, rows 10 apart
  EXPECT_EQ(m.outerStride(), 10);
  EXPECT_EQ(m(2, 4), 29.0f);  // token 2, column 5 + 4
  EXPECT_EQ(m.data(), x.data() + 5);
}

TEST(AsMatrix, ConstViewGivesReadOnlyMap) {
  const auto t = counting(2, 3);
  const auto m = attn::as_matrix(t.view());
  static_assert(std::is_same_v<decltype(m), const attn::MatrixMap<const float>>);
  EXPECT_FLOAT_EQ(m.sum(), 15.0f);
}

TEST(AsMatrix, TransposedViewIsRefusedNotCopied) {
  auto t = counting(3, 7);
  ATTN_EXPECT_ERROR(attn::as_matrix(attn::transpose(t.view(), 0, 1)), attn::ShapeError,
                    {"(7, 3)", "(1, 7)", "unit-stride"});
  const attn::TensorView<float, 2> overlapping(t.data(), {3, 4}, {2, 1});
  ATTN_EXPECT_ERROR(attn::as_matrix(overlapping), std::invalid_argument, {"(2, 1)"});
}

TEST(AsVector, MapsAStridedColumn) {
  auto t = counting(3, 7);
  auto v = attn::as_vector(attn::select(t.view(), 1, 3));
  EXPECT_EQ(v.size(), 3);
  EXPECT_EQ(v(2), 17.0f);
  v(0) = 100.0f;
  EXPECT_EQ(t(0, 3), 100.0f);
}

}  // namespace
