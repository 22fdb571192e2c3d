// attn/layers/detail/copyable_mutex.hpp: a mutex member that keeps its owner copyable and
// movable: a copy gets a new, unlocked mutex. For layers and models whose const training-mode
// forward draws dropout masks from a generator they own, so concurrent forwards take turns.
// Private.
#ifndef ATTN_LAYERS_DETAIL_COPYABLE_MUTEX_HPP
#define ATTN_LAYERS_DETAIL_COPYABLE_MUTEX_HPP

#include <mutex>

namespace attn::detail {

struct CopyableMutex {
  CopyableMutex() = default;
  CopyableMutex(const CopyableMutex& /*other*/) {}
  CopyableMutex& operator=(const CopyableMutex& /*other*/) { return *this; }
  std::mutex mutex;
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_COPYABLE_MUTEX_HPP
