// ATTN_ASSERT guards invariants in hot paths and is compiled out with NDEBUG, like assert. This
// program is compiled with support/throwing_assert.hpp force-included, so in any build type a
// broken invariant throws attn_test::AssertionFailure instead of aborting, and a test can see it.
#include <gtest/gtest.h>

#include <array>

#include "attn/tensor/tensor_view.hpp"

namespace {

TEST(Assertions, TensorViewElementAccessChecksBounds) {
  std::array<float, 6> values{0, 1, 2, 3, 4, 5};
  const attn::TensorView<float, 2> view(values.data(), {2, 3});
  EXPECT_EQ(view(1, 2), 5.0f);
  EXPECT_THROW(view(2, 0), attn_test::AssertionFailure);
  EXPECT_THROW(view(0, -1), attn_test::AssertionFailure);
}

}  // namespace
