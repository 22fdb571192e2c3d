// Force-included into the unit tests before any attn header: ATTN_ASSERT throws instead of
// aborting, so debug-only invariants can be tested with EXPECT_THROW in every build type.
#ifndef ATTN_TESTS_SUPPORT_THROWING_ASSERT_HPP
#define ATTN_TESTS_SUPPORT_THROWING_ASSERT_HPP

#include <stdexcept>

namespace attn_test {
struct AssertionFailure : std::logic_error {
  using std::logic_error::logic_error;
};
}  // namespace attn_test

#define ATTN_ASSERT(condition) \
  ((condition) ? static_cast<void>(0) : throw ::attn_test::AssertionFailure(#condition))

#endif  // ATTN_TESTS_SUPPORT_THROWING_ASSERT_HPP
