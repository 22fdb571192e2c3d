#include "attn/tensor/shape.hpp"

#include <gtest/gtest.h>

namespace {

TEST(Shape, NumelOfOddShapes) {
  EXPECT_EQ(attn::numel(attn::Shape<3>{1, 3, 7}), 21);
  EXPECT_EQ(attn::numel(attn::Shape<2>{7, 0}), 0);
  EXPECT_EQ(attn::numel(attn::Shape<1>{1}), 1);
}

TEST(Shape, ContiguousStridesAreRowMajor) {
  EXPECT_EQ(attn::contiguous_strides(attn::Shape<3>{1, 3, 7}), (attn::Shape<3>{21, 7, 1}));
  EXPECT_EQ(attn::contiguous_strides(attn::Shape<4>{2, 3, 5, 7}), (attn::Shape<4>{105, 35, 7, 1}));
  EXPECT_EQ(attn::contiguous_strides(attn::Shape<1>{7}), (attn::Shape<1>{1}));
}

TEST(Shape, PrintsAsPyTorchDoes) {
  EXPECT_EQ(attn::to_string(attn::Shape<3>{2, 6, 768}), "(2, 6, 768)");
  EXPECT_EQ(attn::to_string(attn::Shape<1>{3}), "(3)");
}

TEST(Shape, NegativeDimsCountFromTheEnd) {
  EXPECT_EQ(attn::detail::normalize_dim(-1, 3, "test"), 2);
  EXPECT_EQ(attn::detail::normalize_dim(0, 3, "test"), 0);
  EXPECT_THROW(attn::detail::normalize_dim(3, 3, "test"), attn::IndexError);
  EXPECT_THROW(attn::detail::normalize_dim(-4, 3, "test"), std::out_of_range);
}

}  // namespace
