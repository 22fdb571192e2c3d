// attn/version.hpp: the library version. This file is the single source of truth:
// CMakeLists.txt reads these three macros to set project(attn VERSION ...).
#ifndef ATTN_VERSION_HPP
#define ATTN_VERSION_HPP

#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 2
#define ATTN_VERSION_PATCH 0

// Encoded as MAJOR * 10000 + MINOR * 100 + PATCH, for preprocessor comparisons.
#define ATTN_VERSION (ATTN_VERSION_MAJOR * 10000 + ATTN_VERSION_MINOR * 100 + ATTN_VERSION_PATCH)

#endif  // ATTN_VERSION_HPP
