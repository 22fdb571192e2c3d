#include "attn/tensor/view_ops.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "support/expect_error.hpp"

namespace {

using attn::Shape;
using attn::TensorView;

class ViewOps : public ::testing::Test {
 protected:
  // 0, 1, 2, ... so every element's value is its row-major offset in the buffer.
  std::vector<float> buffer_ = std::vector<float>(105);
  void SetUp() override { std::iota(buffer_.begin(), buffer_.end(), 0.0f); }
};

TEST_F(ViewOps, ReshapeKeepsDataAndRecomputesStrides) {
  const TensorView<float, 3> view(buffer_.data(), {3, 5, 7});
  const auto flat = attn::reshape<2>(view, Shape<2>{15, 7});
  EXPECT_EQ(flat.data(), buffer_.data());
  EXPECT_EQ(flat.strides(), (Shape<2>{7, 1}));
  EXPECT_EQ(flat(8, 3), 59.0f);  // 8*7 + 3
  const auto inferred = attn::reshape<3>(view, Shape<3>{-1, 1, 21});
  EXPECT_EQ(inferred.shape(), (Shape<3>{5, 1, 21}));
  EXPECT_EQ(inferred(4, 0, 20), 104.0f);
}

TEST_F(ViewOps, ReshapeRejectsBadShapesAndStridedViews) {
  const TensorView<float, 2> view(buffer_.data(), {3, 7});
  ATTN_EXPECT_ERROR(attn::reshape<2>(view, Shape<2>{4, 5}), attn::ShapeError,
                    {"(4, 5)", "20", "(3, 7)", "21"});
  ATTN_EXPECT_ERROR(attn::reshape<2>(view, Shape<2>{-1, 5}), std::invalid_argument,
                    {"infer", "(-1, 5)"});
  ATTN_EXPECT_ERROR(attn::reshape<2>(view, Shape<2>{-1, -1}), attn::ShapeError, {"at most one -1"});
  const auto transposed = attn::transpose(view, 0, 1);
  ATTN_EXPECT_ERROR(attn::reshape<1>(transposed, Shape<1>{21}), attn::ShapeError,
                    {"not contiguous", "(7, 3)", "(1, 7)"});
}

TEST_F(ViewOps, TransposeSwapsShapeAndStrides) {
  const TensorView<float, 3> view(buffer_.data(), {3, 5, 7});
  const auto swapped = attn::transpose(view, 1, -1);
  EXPECT_EQ(swapped.shape(), (Shape<3>{3, 7, 5}));
  EXPECT_EQ(swapped.strides(), (Shape<3>{35, 1, 7}));
  // swapped(b, i, j) == view(b, j, i) == b*35 + j*7 + i
  EXPECT_EQ(swapped(2, 6, 4), 2 * 35 + 4 * 7 + 6);
  EXPECT_EQ(&swapped(1, 3, 2), &view(1, 2, 3));
  EXPECT_THROW(attn::transpose(view, 0, 3), attn::IndexError);
}

TEST_F(ViewOps, PermuteReordersDimensions) {
  const TensorView<float, 3> view(buffer_.data(), {3, 5, 7});
  const auto permuted = attn::permute(view, {2, 0, 1});
  EXPECT_EQ(permuted.shape(), (Shape<3>{7, 3, 5}));
  EXPECT_EQ(permuted.strides(), (Shape<3>{1, 35, 7}));
  EXPECT_EQ(permuted(6, 2, 4), 2 * 35 + 4 * 7 + 6);
  ATTN_EXPECT_ERROR(attn::permute(view, {0, 0, 1}), attn::IndexError, {"permutation"});
  ATTN_EXPECT_ERROR(attn::permute(view, {0, 1, 3}), std::out_of_range, {"is 3"});
}

TEST_F(ViewOps, SliceNarrowsOneDimension) {
  const TensorView<float, 2> view(buffer_.data(), {3, 7});
  const auto columns = attn::slice(view, 1, 2, 5);
  EXPECT_EQ(columns.shape(), (Shape<2>{3, 3}));
  EXPECT_EQ(columns.strides(), (Shape<2>{7, 1}));
  EXPECT_EQ(columns(0, 0), 2.0f);
  EXPECT_EQ(columns(2, 2), 18.0f);  // 2*7 + 4
  EXPECT_FALSE(columns.is_contiguous());
  const auto rows = attn::slice(view, 0, 1, 2);
  EXPECT_EQ(rows.shape(), (Shape<2>{1, 7}));
  EXPECT_EQ(rows(0, 6), 13.0f);
  EXPECT_TRUE(rows.is_contiguous());
  const auto none = attn::slice(view, 0, 3, 3);
  EXPECT_EQ(none.numel(), 0);
  ATTN_EXPECT_ERROR(attn::slice(view, 1, 5, 8), attn::IndexError, {"[5, 8)", "dim 1", "extent 7"});
  ATTN_EXPECT_ERROR(attn::slice(view, 0, 2, 1), attn::IndexError, {"[2, 1)"});
}

TEST_F(ViewOps, SelectDropsADimension) {
  const TensorView<float, 3> view(buffer_.data(), {3, 5, 7});
  const auto middle = attn::select(view, 1, 4);
  EXPECT_EQ(middle.shape(), (Shape<2>{3, 7}));
  EXPECT_EQ(middle.strides(), (Shape<2>{35, 1}));
  EXPECT_EQ(middle(2, 1), 2 * 35 + 4 * 7 + 1);
  const auto last = attn::select(view, -1, 6);
  EXPECT_EQ(last.shape(), (Shape<2>{3, 5}));
  EXPECT_EQ(last(1, 1), 35 + 7 + 6);
  ATTN_EXPECT_ERROR(attn::select(view, 0, 3), attn::IndexError, {"index 3", "extent 3"});
}

TEST_F(ViewOps, SplitHeadsIsTheBooksViewThenTranspose) {
  // (B=1, T=3, H*D=2*5) -> (1, 2, 3, 5); element (b, h, t, d) = x(b, t, h*D + d).
  const TensorView<float, 3> x(buffer_.data(), {1, 3, 10});
  const auto heads = attn::split_heads(x, 2);
  EXPECT_EQ(heads.shape(), (Shape<4>{1, 2, 3, 5}));
  EXPECT_EQ(heads.strides(), (Shape<4>{30, 5, 10, 1}));
  EXPECT_EQ(heads(0, 1, 2, 3), 2 * 10 + 1 * 5 + 3);
  EXPECT_EQ(heads(0, 0, 1, 4), 14.0f);
  EXPECT_EQ(heads.data(), buffer_.data());
  ATTN_EXPECT_ERROR(attn::split_heads(x, 3), attn::ShapeError,
                    {"(10)", "num_heads (3)", "(1, 3, 10)"});
  ATTN_EXPECT_ERROR(attn::split_heads(x, 0), attn::ShapeError, {"num_heads (0)"});
  const auto strided = attn::transpose(TensorView<float, 3>(buffer_.data(), {1, 10, 3}), 1, 2);
  ATTN_EXPECT_ERROR(attn::split_heads(strided, 2), attn::ShapeError, {"stride 3"});
}

TEST_F(ViewOps, SplitHeadsOfABatchedSliceKeepsStrides) {
  // The key block of a fused (B, T, 3*C) projection: a column slice, then a head split.
  const TensorView<float, 3> qkv(buffer_.data(), {1, 5, 21});  // C = 7
  const auto keys = attn::slice(qkv, 2, 7, 14);
  const auto heads = attn::split_heads(keys, 7);
  EXPECT_EQ(heads.shape(), (Shape<4>{1, 7, 5, 1}));
  EXPECT_EQ(heads(0, 3, 4, 0), 4 * 21 + 7 + 3);
}

}  // namespace
