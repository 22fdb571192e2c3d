// Multi-head attention variants side by side, as in the book's bonus notebook on efficient
// multi-head attention: the wrapper of CausalAttention heads, MultiHeadAttention and the combined
// QKV layer through the reference kernel (materialised scores), and MultiHeadAttention through
// the fused kernel. Forward pass, eval mode, causal, float32.
//
// Arguments: batch, tokens, threads. d_in = d_out = 768 and 12 heads (GPT-2 small).
// GFLOP/s counts the useful work: the projections plus the attention products with the masked
// half skipped, 2 * 2 * B * H * D * T(T+1)/2, for every variant alike (51.5 GFLOP at B 8, T 1024).
#include <sys/resource.h>

#include <benchmark/benchmark.h>
#include <attn/attn.hpp>

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

}  // namespace

BENCHMARK(BM_MHA_Wrapper_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_CombinedQKV_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_Fused)->Apply(sizes);
BENCHMARK(BM_MHA_Fused_LongContext)
    ->ArgNames({"B", "T", "threads"})
    ->Args({1, 32768, 2})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
