// src/dispatch.cpp: attn::compiled's choice of kernels. The library holds one object of
// src/dispatched_kernels.cpp per instruction-set level it was built for (their entry points are
// listed in attn_kernel_levels.inc, which CMake writes, best level first); the first call to a
// kernel picks the best level this CPU runs, capped by ATTN_ISA (attn/isa.hpp). This file is
// compiled with the library's plain flags and instantiates no Eigen code, so it cannot clash
// with the program that links it.
#include "attn/kernels/detail/dispatch.hpp"
#include "attn/isa.hpp"

#ifndef ATTN_COMPILED
#error "dispatch.cpp is built by the attn::compiled target, which defines ATTN_COMPILED."
#endif

// ATTN_KERNEL_LEVEL(entry) for each level object linked into this library, best first.
#define ATTN_KERNEL_LEVEL(entry) extern "C" const attn::detail::Kernels* entry();
#include "attn_kernel_levels.inc"
#undef ATTN_KERNEL_LEVEL

namespace attn::detail {
namespace {

const Kernels& choose_kernels() {
  const Kernels* const levels[] = {
#define ATTN_KERNEL_LEVEL(entry) entry(),
#include "attn_kernel_levels.inc"
#undef ATTN_KERNEL_LEVEL
  };
  const Isa runnable = capped_cpu_isa();
  for (const Kernels* level : levels) {
    if (level->isa <= runnable) return *level;
  }
  // A library built for one level above what ATTN_ISA allows (the -march=native build of
  // attn's own benchmarks) runs that level: it has no other.
  return *levels[sizeof(levels) / sizeof(levels[0]) - 1];
}

}  // namespace

const Kernels& dispatched_kernels() {
  static const Kernels& chosen = choose_kernels();
  return chosen;
}

Isa dispatched_isa() {
  return dispatched_kernels().isa;
}

}  // namespace attn::detail
