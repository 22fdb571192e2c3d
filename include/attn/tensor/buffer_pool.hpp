// attn/tensor/buffer_pool.hpp: the memory behind every Tensor. Large buffers (1 MiB and up)
// that a Tensor frees are kept for the next Tensor of a similar size, up to a limit.
//
// Why: a layer's forward allocates its projections and outputs anew on every call (GPT-2
// small's attention: 75 + 25 + 25 MB at B 8, T 1024). The C library hands allocations that
// large straight to the kernel and returns them on free, so every call paid ~30,000 page faults
// and the kernel's zeroing of the pages: 9-13 % of a forward's time, measured here. Reusing the
// blocks costs nothing after the first call. (ONNX Runtime's arena and PyTorch's caching
// allocators do the same for the same reason.)
//
// The pool is shared by all threads (a mutex guards it); a block is reused for a request of at
// least half its size, so little memory sits unused in a reused block. Under AddressSanitizer
// nothing is kept, so that use after free is still caught.
#ifndef ATTN_TENSOR_BUFFER_POOL_HPP
#define ATTN_TENSOR_BUFFER_POOL_HPP

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define ATTN_BUFFER_POOL_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTN_BUFFER_POOL_DISABLED 1
#endif
#endif

namespace attn {

/// What the pool holds and has done, for reports and tests.
struct BufferPoolStats {
  std::size_t cached_bytes = 0;  ///< freed memory kept for reuse
  std::size_t limit_bytes = 0;   ///< the most it keeps
  std::size_t reused = 0;        ///< large allocations served from the pool
  std::size_t allocated = 0;     ///< large allocations that asked the system
};

namespace detail {

class BufferPool {
 public:
  /// Buffers smaller than this come from operator new and go straight back.
  static constexpr std::size_t pooled_bytes = std::size_t{1} << 20;
  static constexpr std::align_val_t alignment{64};  // a cache line; enough for any Eigen packet

  /// A block of memory and its real size, which may exceed the request it serves.
  struct Block {
    void* data = nullptr;
    std::size_t bytes = 0;
  };

  static BufferPool& instance() {
    // Never destroyed, so a Tensor that outlives main's statics still frees safely.
    static auto* pool = new BufferPool();  // NOLINT(cppcoreguidelines-owning-memory)
    return *pool;
  }

  Block allocate(std::size_t bytes) {
    if (bytes >= pooled_bytes) {
      const std::lock_guard<std::mutex> lock(mutex_);
      // The smallest cached block that fits and is at most twice the request.
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->bytes >= bytes && it->bytes / 2 <= bytes &&
            (best == free_.end() || it->bytes < best->bytes)) {
          best = it;
        }
      }
      if (best != free_.end()) {
        const Block block = *best;
        free_.erase(best);
        cached_bytes_ -= block.bytes;
        ++reused_;
        return block;
      }
      ++allocated_;
    }
    return {::operator new(bytes, alignment), bytes};
  }

  void release(const Block& block) {
    if (block.data == nullptr) return;
#ifndef ATTN_BUFFER_POOL_DISABLED
    if (block.bytes >= pooled_bytes) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + block.bytes <= limit_bytes_) {
        free_.push_back(block);
        cached_bytes_ += block.bytes;
        return;
      }
    }
#endif
    ::operator delete(block.data, alignment);
  }

  void set_limit(std::size_t bytes) {
    const std::lock_guard<std::mutex> lock(mutex_);
    limit_bytes_ = bytes;
    trim(bytes);
  }

  void release_cached() {
    const std::lock_guard<std::mutex> lock(mutex_);
    trim(0);
  }

  BufferPoolStats stats() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return {cached_bytes_, limit_bytes_, reused_, allocated_};
  }

 private:
  BufferPool() = default;

  void trim(std::size_t keep) {  // frees cached blocks, largest first, until `keep` is left
    std::sort(free_.begin(), free_.end(),
              [](const Block& a, const Block& b) { return a.bytes < b.bytes; });
    while (cached_bytes_ > keep) {
      cached_bytes_ -= free_.back().bytes;
      ::operator delete(free_.back().data, alignment);
      free_.pop_back();
    }
  }

  std::mutex mutex_;
  std::vector<Block> free_;  // cached, ready for reuse
  std::size_t cached_bytes_ = 0;
  std::size_t limit_bytes_ = std::size_t{1} << 30;
  std::size_t reused_ = 0;
  std::size_t allocated_ = 0;
};

/// A Tensor's elements: `size` uninitialised, 64-byte aligned values from the pool, copied
/// deeply, moved cheaply.
template <typename Scalar>
class Buffer {
  static_assert(std::is_trivially_copyable_v<Scalar> && std::is_trivially_destructible_v<Scalar>,
                "Tensor holds plain values (numbers, bool).");

 public:
  Buffer() = default;
  explicit Buffer(Index size) : size_(size) {
    if (size > 0)
      block_ = BufferPool::instance().allocate(static_cast<std::size_t>(size) * sizeof(Scalar));
  }
  Buffer(const Buffer& other) : Buffer(other.size_) {
    std::copy_n(other.data(), other.size_, data());
  }
  Buffer(Buffer&& other) noexcept
      : block_(std::exchange(other.block_, {})), size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(const Buffer& other) {
    if (this != &other) {
      Buffer copy(other);
      swap(copy);
    }
    return *this;
  }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~Buffer() { BufferPool::instance().release(block_); }

  Scalar* data() { return static_cast<Scalar*>(block_.data); }
  const Scalar* data() const { return static_cast<const Scalar*>(block_.data); }
  Index size() const { return size_; }
  void swap(Buffer& other) noexcept {
    std::swap(block_, other.block_);
    std::swap(size_, other.size_);
  }

 private:
  BufferPool::Block block_;
  Index size_ = 0;
};

}  // namespace detail

/// The most freed tensor memory attn keeps for reuse (default 1 GiB); 0 keeps none. Lowering
/// it frees what is over the new limit.
inline void set_buffer_pool_limit(std::size_t bytes) {
  detail::BufferPool::instance().set_limit(bytes);
}

/// Gives every kept buffer back to the system (as torch.cuda.empty_cache does for its pool).
inline void release_buffer_pool() {
  detail::BufferPool::instance().release_cached();
}

/// The pool's current state.
inline BufferPoolStats buffer_pool_stats() {
  return detail::BufferPool::instance().stats();
}

}  // namespace attn

#endif  // ATTN_TENSOR_BUFFER_POOL_HPP
