#include "attn/threads.hpp"

#include <gtest/gtest.h>

#include "support/expect_error.hpp"

namespace {

TEST(Threads, SetAndQuery) {
  const int before = attn::num_threads();
  EXPECT_GE(before, 1);
  attn::set_num_threads(2);
#ifdef _OPENMP
  EXPECT_EQ(attn::num_threads(), 2);
  EXPECT_EQ(Eigen::nbThreads(), 2);
#else
  EXPECT_EQ(attn::num_threads(), 1);
#endif
  attn::set_num_threads(before);
  ATTN_EXPECT_ERROR(attn::set_num_threads(0), std::invalid_argument, {"threads (0)"});
}

}  // namespace
