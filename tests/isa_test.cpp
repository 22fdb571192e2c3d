// Tests of attn/isa.hpp: the levels' names, the CPU's level against the compiler's own CPU
// checks, and that attn::compiled runs the level ATTN_ISA asks for (the isa.<level> ctest runs
// the whole suite under each level).
#include "attn/isa.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/expect_error.hpp"

namespace {

TEST(Isa, NamesRoundTrip) {
  for (const attn::Isa level :
       {attn::Isa::baseline, attn::Isa::avx2, attn::Isa::avx512, attn::Isa::avx512_bf16}) {
    EXPECT_EQ(attn::parse_isa(attn::isa_name(level)), level);
  }
  ATTN_EXPECT_ERROR(attn::parse_isa("avx1024", "ATTN_ISA"), std::invalid_argument,
                    {"ATTN_ISA (\"avx1024\") must be one of baseline, avx2, avx512, avx512_bf16"});
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The compiler's runtime CPU checks (libgcc's / compiler-rt's cpu model, which also consults
// XCR0) are an oracle independent of attn's CPUID reading.
TEST(Isa, CpuLevelAgreesWithTheCompilersCpuChecks) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  const attn::Isa expected = bf16     ? attn::Isa::avx512_bf16
                             : avx512 ? attn::Isa::avx512
                             : avx2   ? attn::Isa::avx2
                                      : attn::Isa::baseline;
  EXPECT_EQ(attn::cpu_isa(), expected) << "attn reads " << attn::isa_name(attn::cpu_isa())
                                       << ", the compiler " << attn::isa_name(expected);
}
#endif

TEST(Isa, ACapFromTheEnvironment) {
  const char* before = std::getenv("ATTN_ISA");
  const std::string saved = before != nullptr ? before : "";
  ::setenv("ATTN_ISA", "baseline", 1);
  EXPECT_EQ(attn::capped_cpu_isa(), attn::Isa::baseline);
  ::setenv("ATTN_ISA", "avx512_bf16", 1);
  EXPECT_EQ(attn::capped_cpu_isa(), attn::cpu_isa());  // a cap above the CPU changes nothing
  ::setenv("ATTN_ISA", "sse9", 1);
  ATTN_EXPECT_ERROR(attn::capped_cpu_isa(), std::invalid_argument,
                    {"ATTN_ISA (\"sse9\") must be one of baseline, avx2, avx512, avx512_bf16"});
  if (before != nullptr) {
    ::setenv("ATTN_ISA", saved.c_str(), 1);
  } else {
    ::unsetenv("ATTN_ISA");
  }
}

TEST(Isa, RunsTheLevelAsked) {
#ifdef ATTN_COMPILED
  const char* cap = std::getenv("ATTN_ISA");
  attn::Isa expected = attn::cpu_isa();
  if (cap != nullptr && *cap != '\0' && attn::parse_isa(cap) < expected) {
    expected = attn::parse_isa(cap);
  }
  std::printf("[ isa      ] attn::compiled runs %s (cpu %s, ATTN_ISA %s)\n",
              attn::isa_name(attn::isa()), attn::isa_name(attn::cpu_isa()),
              cap != nullptr ? cap : "unset");
  if (cap != nullptr && attn::parse_isa(cap) > attn::cpu_isa()) {
    GTEST_SKIP() << "this CPU cannot run " << cap << "; the suite ran at "
                 << attn::isa_name(attn::isa());
  }
  EXPECT_EQ(attn::isa(), expected);
#else
  EXPECT_EQ(attn::isa(), attn::flags_isa());  // from the headers: this program's own flags
#endif
}

}  // namespace
