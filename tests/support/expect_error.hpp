// ATTN_EXPECT_ERROR(statement, Exception, {"fragment", ...}): the statement throws Exception (or
// a subclass) and its message contains every fragment, so tests pin what users will read.
#ifndef ATTN_TESTS_SUPPORT_EXPECT_ERROR_HPP
#define ATTN_TESTS_SUPPORT_EXPECT_ERROR_HPP

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace attn_test {

inline ::testing::AssertionResult message_contains(const std::string& message,
                                                   std::initializer_list<const char*> fragments) {
  for (const char* fragment : fragments) {
    if (message.find(fragment) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message \"" << message << "\" lacks \"" << fragment << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace attn_test

#define ATTN_EXPECT_ERROR(statement, Exception, ...)                         \
  do {                                                                       \
    bool attn_thrown_ = false;                                               \
    try {                                                                    \
      static_cast<void>(statement);                                          \
    } catch (const Exception& error) {                                       \
      attn_thrown_ = true;                                                   \
      EXPECT_TRUE(::attn_test::message_contains(error.what(), __VA_ARGS__)); \
    }                                                                        \
    EXPECT_TRUE(attn_thrown_) << #statement " did not throw " #Exception;    \
  } while (false)

#endif  // ATTN_TESTS_SUPPORT_EXPECT_ERROR_HPP
