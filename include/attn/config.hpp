// attn/config.hpp: the base every attn header includes. It pulls in Eigen, checks its version,
// and defines the index type, the error types thrown at the public API boundary, and ATTN_ASSERT
// for debug-only checks in hot loops.
#ifndef ATTN_CONFIG_HPP
#define ATTN_CONFIG_HPP

#include <Eigen/Core>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "attn/version.hpp"

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "attn needs Eigen 3.4 or newer (Debian: apt-get install libeigen3-dev)."
#endif

// ATTN_ASSERT guards invariants inside hot loops. It is compiled out with NDEBUG, like assert.
// Define it before including attn to change it; our tests make it throw so violations are testable.
#ifndef ATTN_ASSERT
#include <cassert>
#define ATTN_ASSERT(condition) assert(condition)
#endif

// ATTN_COMPILED is defined by the attn::compiled CMake target. Its library, libattn_compiled,
// holds the hot kernels (products, the fused attention, the bfloat16 product) compiled once for
// each instruction-set level and chosen at run time (attn/isa.hpp); the headers then call them
// through raw pointers, shapes, strides and plain structs (kernels/detail/dispatch.hpp), never
// Eigen objects, so a program compiled with any flags can link a library built with any other.

namespace attn {

/// Sizes, indices and strides, counted in elements.
using Index = Eigen::Index;

/// A shape did not fit: wrong extent, mismatched dimensions, non-contiguous where contiguous is
/// required. The message names the argument and the shapes involved.
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// An index or range fell outside a dimension. The message names the index and the extent.
class IndexError : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

namespace detail {

/// Streams every argument into one string: the building block of our error messages.
template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

}  // namespace detail
}  // namespace attn

#endif  // ATTN_CONFIG_HPP
