// src/dispatch.cpp: attn::compiled's choice of kernels. The library holds one object of
// src/dispatched_kernels.cpp per instruction-set level it was built for (their entry points are
// listed in attn_kernel_levels.inc, which CMake writes, best level first); the first call to a
// kernel picks the best level this CPU runs, capped by ATTN_ISA (attn/isa.hpp). This file is
// compiled with the library's plain flags and instantiates no Eigen code, so it cannot clash
// with the program that links it.
#include <cstdio>
#include <stdexcept>

#include "attn/isa.hpp"
#include "attn/kernels/detail/dispatch.hpp"

#ifndef ATTN_COMPILED
#error "dispatch.cpp is built by the attn::compiled target, which defines ATTN_COMPILED."
#endif

// ATTN_KERNEL_LEVEL(entry) for each level object linked into this library, best first.
#define ATTN_KERNEL_LEVEL(entry) extern "C" const attn::detail::Kernels* entry();
#include "attn_kernel_levels.inc"
#undef ATTN_KERNEL_LEVEL

namespace attn::detail {
namespace {

// What the CPU runs, capped by ATTN_ISA. A bad ATTN_ISA is reported and ignored, as OpenMP
// treats a bad OMP_NUM_THREADS: the first kernel call may come from inside a parallel region or
// a static initialiser, where an exception would end the program.
Isa runnable_level() {
  try {
    return capped_cpu_isa();
  } catch (const std::invalid_argument& error) {
    std::fprintf(stderr, "attn: %s; running %s\n", error.what(), isa_name(cpu_isa()));
    return cpu_isa();
  }
}

const Kernels& choose_kernels() {
  const Kernels* const levels[] = {
#define ATTN_KERNEL_LEVEL(entry) entry(),
#include "attn_kernel_levels.inc"
#undef ATTN_KERNEL_LEVEL
  };
  const Isa runnable = runnable_level();
  for (const Kernels* level : levels) {
    if (level->isa <= runnable) return *level;
  }
  // Only levels above the cap: a library built for one level (the -march=native copy attn's own
  // benchmarks link) runs it if the CPU can, whatever ATTN_ISA says.
  const Kernels& lowest = *levels[sizeof(levels) / sizeof(levels[0]) - 1];
  if (lowest.isa <= cpu_isa()) return lowest;
  throw std::runtime_error(concat("attn::compiled holds kernels for ", isa_name(lowest.isa),
                                  " and above, which this CPU (", isa_name(cpu_isa()),
                                  ") cannot run: build it with every level (the default)"));
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
