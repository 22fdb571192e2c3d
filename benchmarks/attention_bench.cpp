// Multi-head attention variants side by side, as in the book's bonus notebook on efficient
// multi-head attention: the wrapper of CausalAttention heads, MultiHeadAttention and the combined
// QKV layer through the reference kernel (materialised scores), and MultiHeadAttention through
// the fused kernel. Forward pass, eval mode, causal, float32.
//
// Arguments: batch, tokens, threads. d_in = d_out = 768 and 12 heads (GPT-2 small).
// GFLOP/s counts the useful work: the projections plus the attention products with the masked
// half skipped, 2 * 2 * B * H * D * T(T+1)/2, for every variant alike (51.5 GFLOP at B 8, T 1024).
//
// Beside them, the machine's sgemm rate as this build reaches it, the yardstick for the rates
// above: a square float product through Eigen's own threaded product (BM_Sgemm) and through
// attn's row-split parallel_gemm (BM_Sgemm_Attn), 2 N^3 FLOP each.
#include <sys/resource.h>

#include <cstdint>

#include <benchmark/benchmark.h>
#include <attn/attn.hpp>
#include <attn/kernels/gemm.hpp>

namespace {

constexpr attn::Index kEmbedding = 768;
constexpr attn::Index kHeads = 12;

double attention_flops(double batch, double tokens, bool out_projection) {
  const double d = kEmbedding;
  const double projections = 2.0 * batch * tokens * d * 3.0 * d;
  const double output = out_projection ? 2.0 * batch * tokens * d * d : 0.0;
  const double products = 4.0 * batch * d * tokens * (tokens + 1) / 2.0;  // H * D = d
  return projections + output + products;
}

attn::Tensor<float, 3> random_input(attn::Index batch, attn::Index tokens) {
  attn::Tensor<float, 3> x({batch, tokens, kEmbedding});
  attn::Generator generator(1);
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>(-1, 1);
  return x;
}

template <typename Layer>
void run(benchmark::State& state, Layer& layer, bool out_projection) {
  const attn::Index batch = state.range(0), tokens = state.range(1);
  attn::set_num_threads(static_cast<int>(state.range(2)));
  layer.eval();
  const auto x = random_input(batch, tokens);
  for (auto _ : state) {
    auto out = layer.forward(x.view());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      attention_flops(static_cast<double>(batch), static_cast<double>(tokens), out_projection) *
          1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = static_cast<double>(state.range(2));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  state.counters["peak_RSS_MiB"] = static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void BM_MHA_Wrapper_Reference(benchmark::State& state) {
  attn::MultiHeadAttentionWrapper<float> layer(kEmbedding, kEmbedding / kHeads, state.range(1),
                                               0.0f, kHeads);
  layer.set_attention_path(attn::AttentionPath::reference);
  run(state, layer, false);
}

void BM_MHA_Reference(benchmark::State& state) {
  attn::MultiHeadAttention<float> layer(kEmbedding, kEmbedding, state.range(1), 0.0f, kHeads);
  layer.set_attention_path(attn::AttentionPath::reference);
  run(state, layer, true);
}

void BM_MHA_CombinedQKV_Reference(benchmark::State& state) {
  attn::MultiHeadAttentionCombinedQKV<float> layer(kEmbedding, kEmbedding, state.range(1), 0.0f,
                                                   kHeads);
  layer.set_attention_path(attn::AttentionPath::reference);
  run(state, layer, true);
}

void BM_MHA_Fused(benchmark::State& state) {
  attn::MultiHeadAttention<float> layer(kEmbedding, kEmbedding, state.range(1), 0.0f, kHeads);
  layer.set_attention_path(attn::AttentionPath::fused);
  run(state, layer, true);
}

// The same layer under attn::Autocast(bfloat16): the projections and the attention products
// multiply bfloat16-rounded operands with float sums (vdpbf16ps where the CPU has
// AVX512_BF16); the softmax stays float.
void BM_MHA_Fused_BFloat16(benchmark::State& state) {
  const attn::Autocast autocast(attn::Compute::bfloat16);
  BM_MHA_Fused(state);
}

void sizes(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"B", "T", "threads"});
  for (int threads : {1, 2}) {
    bench->Args({2, 256, threads});
    bench->Args({8, 1024, threads});
  }
  bench->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

// Long context: the fused kernel never holds the 32768 x 32768 scores (4 GiB per head in
// float); peak_RSS_MiB reports the process's peak resident memory (run this one alone).
void BM_MHA_Fused_LongContext(benchmark::State& state) {
  BM_MHA_Fused(state);
}

// The level of the kernels that ran (attn::compiled's choice, or this program's flags), in the
// report's context.
[[maybe_unused]] const bool isa_in_context = [] {
  benchmark::AddCustomContext("attn_isa", attn::isa_name(attn::isa()));
  return true;
}();

attn::RowMatrix<float> random_matrix(attn::Index rows, attn::Index cols, std::uint64_t seed) {
  attn::RowMatrix<float> m(rows, cols);
  attn::Generator generator(seed);
  for (attn::Index i = 0; i < m.size(); ++i) m.data()[i] = generator.uniform<float>(-1, 1);
  return m;
}

// Arguments: N, threads. C = A B with A, B, C row-major (N, N) float.
template <typename Product>
void sgemm(benchmark::State& state, Product product) {
  const attn::Index n = state.range(0);
  attn::set_num_threads(static_cast<int>(state.range(1)));  // Eigen::setNbThreads too
  const auto a = random_matrix(n, n, 1), b = random_matrix(n, n, 2);
  attn::RowMatrix<float> c(n, n);
  for (auto _ : state) {
    product(a, b, c);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double size = static_cast<double>(n);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * size * size * size * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = static_cast<double>(state.range(1));
}

void BM_Sgemm(benchmark::State& state) {
  sgemm(state, [](const auto& a, const auto& b, auto& c) { c.noalias() = a * b; });
}

void BM_Sgemm_Attn(benchmark::State& state) {
  sgemm(state, [](const auto& a, const auto& b, auto& c) {
    attn::detail::parallel_gemm<false, false>(a.rows(), b.cols(), a.cols(), 1.0f, a.data(),
                                              a.cols(), b.data(), b.cols(), 0.0f, c.data(),
                                              c.cols());
  });
}

void sgemm_sizes(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"N", "threads"});
  for (int threads : {1, 2}) bench->Args({1024, threads});
  bench->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

}  // namespace

BENCHMARK(BM_Sgemm)->Apply(sgemm_sizes);
BENCHMARK(BM_Sgemm_Attn)->Apply(sgemm_sizes);
BENCHMARK(BM_MHA_Wrapper_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_CombinedQKV_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_Fused)->Apply(sizes);
BENCHMARK(BM_MHA_Fused_BFloat16)->Apply(sizes);
BENCHMARK(BM_MHA_Fused_LongContext)
    ->ArgNames({"B", "T", "threads"})
    ->Args({1, 32768, 2})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
