// attn/isa.hpp: which vector instructions attn's hot kernels run with.
//
// Programs that ship (a Debian package, a container, one binary copied to every node of a
// cluster) are compiled for a baseline x86-64 CPU, where the headers alone get SSE2 and lose
// most of attn's speed. attn::compiled (CMake target; pkg-config attn-compiled) therefore
// compiles its kernels once for each of these levels and picks one at run time from what the
// CPU and the operating system support, as PyTorch's CPU_CAPABILITY kernels and llama.cpp's CPU
// variants do. ATTN_ISA=<level> in the environment caps the choice (tests run every level the
// CPU has that way). A program built from the headers alone runs the level of its own flags.
#ifndef ATTN_ISA_HPP
#define ATTN_ISA_HPP

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "attn/config.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define ATTN_X86_64_CPUID 1
#endif

namespace attn {

/// An instruction-set level, each containing the ones before it.
enum class Isa {
  baseline,     ///< x86-64 (SSE2), or the compiler's default on another architecture
  avx2,         ///< x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE
  avx512,       ///< x86-64-v4: AVX-512 F, BW, CD, DQ, VL
  avx512_bf16,  ///< x86-64-v4 and AVX512_BF16 (bfloat16 dot products, vdpbf16ps)
};

/// The level's name as ATTN_ISA takes it: "baseline", "avx2", "avx512", "avx512_bf16".
inline const char* isa_name(Isa level) {
  switch (level) {
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512_bf16:
      return "avx512_bf16";
    case Isa::baseline:
      break;
  }
  return "baseline";
}

/// The level named `name` (as isa_name gives it).
/// @throws std::invalid_argument naming `what` and the value for any other name.
inline Isa parse_isa(const std::string& name, const char* what = "ISA level") {
  for (const Isa level : {Isa::baseline, Isa::avx2, Isa::avx512, Isa::avx512_bf16}) {
    if (name == isa_name(level)) return level;
  }
  throw std::invalid_argument(
      detail::concat(what, " (\"", name, "\") must be one of baseline, avx2, avx512, avx512_bf16"));
}

namespace detail {

#ifdef ATTN_X86_64_CPUID
/// Whether the operating system saves the register state named by `mask` in XCR0.
inline bool os_saves(unsigned mask) {
  unsigned eax = 0, edx = 0;
  __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));  // needs OSXSAVE, checked by the caller
  return (eax & mask) == mask;
}
#endif

}  // namespace detail

/// The highest level this CPU and operating system can run (CPUID and XCR0; baseline on other
/// architectures).
inline Isa cpu_isa() {
#ifdef ATTN_X86_64_CPUID
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    return Isa::baseline;
  }
  const bool fma = ecx & (1U << 12), movbe = ecx & (1U << 22), osxsave = ecx & (1U << 27),
             avx = ecx & (1U << 28), f16c = ecx & (1U << 29);
  // XCR0 bits 1-2: SSE and AVX state; 5-7: the AVX-512 mask and upper registers.
  if (!osxsave || !detail::os_saves(0x6U)) return Isa::baseline;
  __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
  const unsigned leaf7_ebx = ebx;
  const bool bmi1 = ebx & (1U << 3), avx2 = ebx & (1U << 5), bmi2 = ebx & (1U << 8);
  const unsigned avx512_v4 = (1U << 16) | (1U << 17) | (1U << 28) | (1U << 30) | (1U << 31);
  __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
  const bool avx512_bf16 = eax & (1U << 5);
  const bool lzcnt = __get_cpuid(0x80000001U, &eax, &ebx, &ecx, &edx) && (ecx & (1U << 5));
  if (!(avx && avx2 && fma && bmi1 && bmi2 && f16c && lzcnt && movbe)) return Isa::baseline;
  if ((leaf7_ebx & avx512_v4) != avx512_v4 || !detail::os_saves(0xE6U)) return Isa::avx2;
  return avx512_bf16 ? Isa::avx512_bf16 : Isa::avx512;
#else
  return Isa::baseline;
#endif
}

/// The level the current translation unit is compiled for (its -march or -m flags).
constexpr Isa flags_isa() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) && \
    defined(__AVX512DQ__) && defined(__AVX512VL__)
#if defined(__AVX512BF16__)
  return Isa::avx512_bf16;
#else
  return Isa::avx512;
#endif
#elif defined(__AVX2__) && defined(__FMA__)
  return Isa::avx2;
#else
  return Isa::baseline;
#endif
}

/// The lower of what the CPU runs and the cap ATTN_ISA sets in the environment, if set.
/// @throws std::invalid_argument if ATTN_ISA names no level.
inline Isa capped_cpu_isa() {
  const Isa cpu = cpu_isa();
  const char* cap = std::getenv("ATTN_ISA");
  if (cap == nullptr || *cap == '\0') return cpu;
  const Isa limit = parse_isa(cap, "ATTN_ISA");
  return limit < cpu ? limit : cpu;
}

#ifdef ATTN_COMPILED
namespace detail {
Isa dispatched_isa();  // libattn_compiled: the level of the kernels it chose (src/dispatch.cpp)
}
#endif

/// The level attn's hot kernels run at in this program: with attn::compiled, the one it chose at
/// the first kernel call (capped_cpu_isa(), or the single level of a library built for one; a
/// bad ATTN_ISA is reported on stderr and ignored); from the headers alone, flags_isa().
inline Isa isa() {
#ifdef ATTN_COMPILED
  return detail::dispatched_isa();
#else
  return flags_isa();
#endif
}

}  // namespace attn

#endif  // ATTN_ISA_HPP
