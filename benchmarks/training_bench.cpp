// One training step of causal multi-head attention, forward with a cache then backward:
// what a training loop pays per layer. Training mode, causal, float32, dropout 0 unless a
// variant says otherwise (each variant sets its kernel path: with dropout the automatic path
// would choose the reference kernel, whose masks are PyTorch's).
//
// Arguments: batch, tokens, threads. d_in = d_out = 768 and 12 heads (GPT-2 small).
// GFLOP/s counts the useful work: forward (projections, output projection, attention products
// with the masked half skipped) plus backward at twice the forward's GEMM work, with the fused
// kernel's recomputation of the scores not counted.
#include <sys/resource.h>

#include <benchmark/benchmark.h>
#include <attn/attn.hpp>

namespace {

constexpr attn::Index kEmbedding = 768;
constexpr attn::Index kHeads = 12;

double training_flops(double batch, double tokens) {
  const double d = kEmbedding;
  const double projections = 2.0 * batch * tokens * d * 4.0 * d;  // Q, K, V and out_proj
  const double products = 4.0 * batch * d * tokens * (tokens + 1) / 2.0;
  return 3.0 * (projections + products);
}

attn::Tensor<float, 3> random_tensor(attn::Index batch, attn::Index tokens, std::uint64_t seed) {
  attn::Tensor<float, 3> x({batch, tokens, kEmbedding});
  attn::Generator generator(seed);
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>(-1, 1);
  return x;
}

template <typename Layer>
void run(benchmark::State& state, Layer& layer) {
  const attn::Index batch = state.range(0), tokens = state.range(1);
  attn::set_num_threads(static_cast<int>(state.range(2)));
  layer.train();
  const auto x = random_tensor(batch, tokens, 1);
  const auto grad_out = random_tensor(batch, tokens, 2);
  typename Layer::Cache cache;
  for (auto _ : state) {
    auto out = layer.forward(x.view(), cache);
    benchmark::DoNotOptimize(out.data());
    auto grad_x = layer.backward(cache, grad_out.view());
    benchmark::DoNotOptimize(grad_x.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      training_flops(static_cast<double>(batch), static_cast<double>(tokens)) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = static_cast<double>(state.range(2));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  state.counters["peak_RSS_MiB"] = static_cast<double>(usage.ru_maxrss) / 1024.0;
}

template <typename Layer>
void forward_backward(benchmark::State& state, attn::AttentionPath path, float dropout = 0.0f) {
  Layer layer(kEmbedding, kEmbedding, state.range(1), dropout, kHeads);
  layer.set_attention_path(path);
  run(state, layer);
}

void BM_MHA_ForwardBackward_Reference(benchmark::State& state) {
  forward_backward<attn::MultiHeadAttention<float>>(state, attn::AttentionPath::reference);
}

void BM_MHA_ForwardBackward_Fused(benchmark::State& state) {
  forward_backward<attn::MultiHeadAttention<float>>(state, attn::AttentionPath::fused);
}

// Dropout 0.1 (GPT-2's) on the fused path: positional masks, recomputed in the backward.
void BM_MHA_ForwardBackward_Fused_Dropout(benchmark::State& state) {
  forward_backward<attn::MultiHeadAttention<float>>(state, attn::AttentionPath::fused, 0.1f);
}

// The fused step under attn::Autocast(bfloat16): every product of the projections and of the
// attention, forward and backward, multiplies bfloat16-rounded operands with float sums;
// weights, gradients and the softmax stay float.
void BM_MHA_ForwardBackward_Fused_BFloat16(benchmark::State& state) {
  const attn::Autocast autocast(attn::Compute::bfloat16);
  BM_MHA_ForwardBackward_Fused(state);
}

void BM_MHA_CombinedQKV_ForwardBackward_Fused(benchmark::State& state) {
  forward_backward<attn::MultiHeadAttentionCombinedQKV<float>>(state, attn::AttentionPath::fused);
}

// Long context: the fused backward recomputes scores tile by tile from the saved log-sum-exp,
// never holding the 32768 x 32768 weights; peak_RSS_MiB is the process's peak (run it alone).
void BM_MHA_ForwardBackward_Fused_LongContext(benchmark::State& state) {
  BM_MHA_ForwardBackward_Fused(state);
}

void sizes(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"B", "T", "threads"});
  bench->Args({2, 256, 2});
  bench->Args({8, 1024, 1});
  bench->Args({8, 1024, 2});
  bench->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

}  // namespace

BENCHMARK(BM_MHA_ForwardBackward_Reference)->Apply(sizes);
BENCHMARK(BM_MHA_ForwardBackward_Fused)->Apply(sizes);
BENCHMARK(BM_MHA_ForwardBackward_Fused_BFloat16)->Apply(sizes);
BENCHMARK(BM_MHA_ForwardBackward_Fused_Dropout)->Apply(sizes);
BENCHMARK(BM_MHA_CombinedQKV_ForwardBackward_Fused)->Apply(sizes);
BENCHMARK(BM_MHA_ForwardBackward_Fused_LongContext)
    ->ArgNames({"B", "T", "threads"})
    ->Args({1, 32768, 2})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
