// Does a head handed to Eigen as a strided Map cost anything against a contiguous copy?
// Per-head Q.K^T GEMM on a (1, T, H*D) projection, H = 12, D = 64 (GPT-2 small heads).
#include <benchmark/benchmark.h>
#include <attn/attn.hpp>

namespace {

constexpr attn::Index kHeads = 12;
constexpr attn::Index kHeadDim = 64;

double head_gemm_flops(attn::Index tokens) {
  return 2.0 * static_cast<double>(kHeads * tokens * tokens * kHeadDim);
}

void BM_HeadScores_StridedView(benchmark::State& state) {
  const attn::Index tokens = state.range(0);
  attn::Tensor<float, 3> projected({1, tokens, kHeads * kHeadDim}, 0.5f);
  attn::RowMatrix<float> scores(tokens, tokens);
  for (auto _ : state) {
    const auto heads = attn::select(attn::split_heads(projected.view(), kHeads), 0, 0);
    for (attn::Index h = 0; h < kHeads; ++h) {
      const auto q = attn::as_matrix(attn::select(heads, 0, h));
      scores.noalias() = q * q.transpose();
      benchmark::DoNotOptimize(scores.data());
    }
  }
  state.counters["GFLOP/s"] = benchmark::Counter(head_gemm_flops(tokens) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_HeadScores_ContiguousCopy(benchmark::State& state) {
  const attn::Index tokens = state.range(0);
  attn::Tensor<float, 3> projected({1, tokens, kHeads * kHeadDim}, 0.5f);
  attn::RowMatrix<float> scores(tokens, tokens);
  attn::RowMatrix<float> head(tokens, kHeadDim);
  for (auto _ : state) {
    const auto heads = attn::select(attn::split_heads(projected.view(), kHeads), 0, 0);
    for (attn::Index h = 0; h < kHeads; ++h) {
      head = attn::as_matrix(attn::select(heads, 0, h));
      scores.noalias() = head * head.transpose();
      benchmark::DoNotOptimize(scores.data());
    }
  }
  state.counters["GFLOP/s"] = benchmark::Counter(head_gemm_flops(tokens) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_HeadScores_StridedView)->Arg(64)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_HeadScores_ContiguousCopy)
    ->Arg(64)
    ->Arg(256)
    ->Arg(1024)
    ->Unit(benchmark::kMicrosecond);
