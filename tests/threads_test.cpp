#include "attn/threads.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <vector>

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

namespace {

// A region that took `wall` seconds while the calling thread worked `own`: waited or not.
void threads_region(attn::detail::TeamWatch& watch, bool waited) {
  watch.observe(waited ? 5e-3 : 1e-4, 1e-4);
}

int threads_alone_for(attn::detail::TeamWatch& watch) {
  int alone = 0;
  while (watch.threads(2) == 1) ++alone;
  return alone;
}

}  // namespace

TEST(TeamWatch, TheTeamStaysWhileRegionsDoNotWait) {
  attn::detail::TeamWatch watch;
  for (int i = 0; i < 1000; ++i) {
    threads_region(watch, i % 100 == 0);  // a wait now and then: scheduling noise
    ASSERT_EQ(watch.threads(2), 2) << "region " << i;
  }
  EXPECT_EQ(watch.threads(1), 1);
}

TEST(TeamWatch, TwoWaitsCloseTogetherRunAloneForAWhileThenLonger) {
  attn::detail::TeamWatch watch;
  threads_region(watch, true);
  for (int i = 0; i < 10; ++i) threads_region(watch, false);
  threads_region(watch, true);  // the second wait within 64 regions
  EXPECT_EQ(threads_alone_for(watch), 256);
  EXPECT_EQ(watch.threads(2), 2);  // then the team is tried again
  threads_region(watch, true);
  threads_region(watch, true);  // still waiting: twice as long alone
  EXPECT_EQ(threads_alone_for(watch), 512);
  for (int i = 0; i < 300; ++i) threads_region(watch, false);  // fine for a while: back to 256
  threads_region(watch, true);
  threads_region(watch, true);
  EXPECT_EQ(threads_alone_for(watch), 256);
}

TEST(TeamWatch, BlocksAreTheSameAloneOrTogether) {
  // for_each_thread_row_block hands out the same blocks whether the team or the calling thread
  // alone runs them (a body may keep per-block state).
  const auto blocks_seen = [] {
    std::vector<std::array<attn::Index, 3>> seen;
    std::mutex guard;
    attn::detail::for_each_thread_row_block(
        10, 1, 2, [&](attn::Index block, attn::Index row0, attn::Index count) {
          const std::lock_guard<std::mutex> lock(guard);
          seen.push_back({block, row0, count});
        });
    std::sort(seen.begin(), seen.end());
    return seen;
  };
  const std::vector<std::array<attn::Index, 3>> expected{{0, 0, 5}, {1, 5, 5}};
  EXPECT_EQ(blocks_seen(), expected);  // the team
  auto& watch = attn::detail::team_watch();
  threads_region(watch, true);
  threads_region(watch, true);         // the process's watch now runs regions alone
  EXPECT_EQ(blocks_seen(), expected);  // the calling thread alone
  threads_alone_for(watch);            // the rest of the spell, for the tests after this one
}
