#include "attn/tensor/tensor_view.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <type_traits>
#include <vector>

#include "support/expect_error.hpp"

namespace {

std::vector<float> iota(attn::Index count) {
  std::vector<float> values(static_cast<std::size_t>(count));
  std::iota(values.begin(), values.end(), 0.0f);
  return values;
}

TEST(TensorView, DefaultIsEmpty) {
  const attn::TensorView<float, 2> view;
  EXPECT_EQ(view.data(), nullptr);
  EXPECT_EQ(view.numel(), 0);
  EXPECT_TRUE(view.empty());
}

TEST(TensorView, RowMajorIndexingOnOddShape) {
  auto values = iota(21);
  const attn::TensorView<float, 3> view(values.data(), {1, 3, 7});
  EXPECT_EQ(view.strides(), (attn::Shape<3>{21, 7, 1}));
  EXPECT_EQ(view.numel(), 21);
  EXPECT_EQ(view.size(-1), 7);
  EXPECT_EQ(view.stride(1), 7);
  // offset = 0*21 + 2*7 + 5 = 19
  EXPECT_EQ(view(0, 2, 5), 19.0f);
  EXPECT_EQ(view(0, 1, 0), 7.0f);
  EXPECT_EQ(&view(0, 2, 6), values.data() + 20);
  EXPECT_TRUE(view.is_contiguous());
}

TEST(TensorView, ExplicitStridesAddressEveryElement) {
  // A 3 x 3 window with row stride 7 inside a 3 x 7 buffer, starting at column 2.
  auto values = iota(21);
  const attn::TensorView<float, 2> view(values.data() + 2, {3, 3}, {7, 1});
  EXPECT_EQ(view(0, 0), 2.0f);
  EXPECT_EQ(view(1, 2), 11.0f);  // 2 + 7 + 2
  EXPECT_EQ(view(2, 1), 17.0f);  // 2 + 14 + 1
  EXPECT_FALSE(view.is_contiguous());
}

TEST(TensorView, ExtentOneDimensionsIgnoreStrideForContiguity) {
  auto values = iota(7);
  const attn::TensorView<float, 3> view(values.data(), {1, 1, 7}, {999, 42, 1});
  EXPECT_TRUE(view.is_contiguous());
}

TEST(TensorView, WritesGoThroughToMemory) {
  auto values = iota(6);
  const attn::TensorView<float, 2> view(values.data(), {2, 3});
  view(1, 1) = -5.0f;
  EXPECT_EQ(values[4], -5.0f);
}

TEST(TensorView, MutableConvertsToConst) {
  auto values = iota(6);
  const attn::TensorView<float, 2> view(values.data(), {2, 3});
  const attn::TensorView<const float, 2> read_only = view;
  EXPECT_EQ(read_only.data(), values.data());
  EXPECT_EQ(read_only(1, 2), 5.0f);
  static_assert(
      std::is_convertible_v<attn::TensorView<float, 2>, attn::TensorView<const float, 2>>);
  static_assert(
      !std::is_convertible_v<attn::TensorView<const float, 2>, attn::TensorView<float, 2>>);
  static_assert(
      !std::is_constructible_v<attn::TensorView<float, 2>, attn::TensorView<const float, 2>>);
  static_assert(std::is_same_v<decltype(read_only(0, 0)), const float&>);
}

TEST(TensorView, AtChecksBounds) {
  auto values = iota(21);
  const attn::TensorView<float, 3> view(values.data(), {1, 3, 7});
  EXPECT_EQ(view.at(0, 2, 6), 20.0f);
  ATTN_EXPECT_ERROR(view.at(0, 3, 0), attn::IndexError, {"index 3", "dim 1", "extent 3"});
  ATTN_EXPECT_ERROR(view.at(-1, 0, 0), std::out_of_range, {"index -1", "(1, 3, 7)"});
}

TEST(TensorView, NegativeExtentIsAShapeError) {
  float value = 0;
  ATTN_EXPECT_ERROR((attn::TensorView<float, 2>(&value, {2, -1})), std::invalid_argument,
                    {"(2, -1)", "negative"});
}

}  // namespace
