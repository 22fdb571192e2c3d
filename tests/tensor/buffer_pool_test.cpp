// The buffer pool behind Tensor: large freed buffers are reused for requests of a similar size,
// never beyond the limit, and never under AddressSanitizer (which must still see use after free).
#include "attn/tensor/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <cstdint>

#include "attn/tensor/tensor.hpp"

namespace {

constexpr attn::Index kLarge = attn::Index{1} << 20;  // 4 MiB of float

#ifdef ATTN_BUFFER_POOL_DISABLED
constexpr bool kPooling = false;
#else
constexpr bool kPooling = true;
#endif

class BufferPool : public ::testing::Test {
 protected:
  void SetUp() override {
    attn::release_buffer_pool();
    limit_ = attn::buffer_pool_stats().limit_bytes;
  }
  void TearDown() override {
    attn::set_buffer_pool_limit(limit_);
    attn::release_buffer_pool();
  }
  std::size_t limit_ = 0;
};

TEST_F(BufferPool, ReusesAFreedLargeBufferForASimilarSize) {
  if (!kPooling) GTEST_SKIP() << "the pool keeps nothing under AddressSanitizer";
  const float* first = nullptr;
  {
    const attn::Tensor<float, 1> large({kLarge});
    first = large.data();
  }
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes, std::size_t(kLarge) * sizeof(float));
  const auto before = attn::buffer_pool_stats().reused;
  const auto again = attn::Tensor<float, 2>::uninitialized({kLarge / 4 + 1, 2});  // just over half
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(attn::buffer_pool_stats().reused, before + 1);
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes, 0u);
}

TEST_F(BufferPool, ReusedBuffersAreZeroFilledWhenTheTensorSaysSo) {
  { attn::Tensor<float, 1> dirty({kLarge}, 7.0f); }
  const attn::Tensor<float, 1> zeros({kLarge});
  for (attn::Index i = 0; i < kLarge; i += 4099) ASSERT_EQ(zeros.data()[i], 0.0f) << i;
}

TEST_F(BufferPool, DoesNotServeARequestOfLessThanHalfABlock) {
  if (!kPooling) GTEST_SKIP() << "the pool keeps nothing under AddressSanitizer";
  { const attn::Tensor<float, 1> large({4 * kLarge}); }
  const auto before = attn::buffer_pool_stats();
  const attn::Tensor<float, 1> small({kLarge});
  EXPECT_EQ(attn::buffer_pool_stats().reused, before.reused);
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes, before.cached_bytes);
}

TEST_F(BufferPool, KeepsNothingBeyondItsLimitAndReleasesOnRequest) {
  attn::set_buffer_pool_limit(std::size_t(kLarge) * sizeof(float));
  {
    const attn::Tensor<float, 1> a({kLarge}), b({kLarge});  // both freed: only one fits
  }
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes,
            kPooling ? std::size_t(kLarge) * sizeof(float) : 0u);
  attn::set_buffer_pool_limit(0);
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes, 0u);
  { const attn::Tensor<float, 1> c({kLarge}); }
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes, 0u);
  attn::set_buffer_pool_limit(limit_);
  { const attn::Tensor<float, 1> d({kLarge}); }
  attn::release_buffer_pool();
  EXPECT_EQ(attn::buffer_pool_stats().cached_bytes, 0u);
}

TEST_F(BufferPool, TensorsAreAlignedCopiedDeeplyAndMovedCheaply) {
  for (attn::Index size : {attn::Index{1}, attn::Index{3}, kLarge}) {
    attn::Tensor<double, 1> a({size}, 2.0);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % 64, 0u) << size;
    attn::Tensor<double, 1> copy = a;
    copy(0) = 5.0;
    EXPECT_EQ(a(0), 2.0);
    const double* storage = a.data();
    attn::Tensor<double, 1> moved = std::move(a);
    EXPECT_EQ(moved.data(), storage);
    EXPECT_EQ(moved(size - 1), 2.0);
    copy = moved;
    EXPECT_EQ(copy(0), 2.0);
  }
}

}  // namespace
