// Inference with causal multi-head attention: generating one token at a time with a KV cache
// (the book's bonus notebook ch04/03_kv-cache), the same step without one (the whole sequence
// recomputed for every new token), and a long prompt's prefill with sliding-window attention.
// One GPT-2-small-sized layer, eval mode, float32, batch 1.
//
// Benchmarks (every shape is an argument, so the name states it):
//   BM_Decode_Cached_{MHA,GQA,MQA}     B, d, H, kv, L, threads: one token's forward(x, cache)
//                                      with L tokens already in the cache
//   BM_Decode_Cached_MHA_Reference     the same for MHA through the reference kernel
//   BM_Decode_Recompute_{MHA,GQA,MQA}  the same next token by forward over all L + 1 tokens
//   BM_Prefill_MHA_Fused               B, d, H, T, threads: forward over a T-token prompt
//   BM_Prefill_MHA_Fused_Window        B, d, H, T, W, threads: the same with set_window(W)
// MHA is MultiHeadAttention (kv = H = 12), GQA GroupedQueryAttention with 4 kv groups, MQA with
// one. d_in = d_out = d = 768, head_dim = d / H = 64. The fused kernel path throughout, but
// for BM_Decode_Cached_MHA_Reference.
//
// Counters: ms_per_token (wall time per generated token; for prefill tokens/s instead),
// context (L: the tokens before the new one), threads, GFLOP/s of the work each iteration
// does by the explicit formulas below, and for the cached step GB/s, the least memory it must
// read (the weights and the cached keys and values) per second, since a single token's step is
// bound by memory rather than arithmetic, and kv_cache_MiB, what the cache holds.
#include <cstdint>

#include <benchmark/benchmark.h>
#include <attn/attn.hpp>

namespace {

using attn::Index;

// Argument positions of the decode benchmarks.
enum DecodeArg { kBatch, kModel, kHeads, kKvHeads, kContext, kDecodeThreads };
// Argument positions of the prefill benchmarks (the windowed one adds W before threads).
enum PrefillArg { kPrefillBatch, kPrefillModel, kPrefillHeads, kTokens, kWindowOrThreads };

constexpr Index kEmbedding = 768;  // GPT-2 small
constexpr Index kNumHeads = 12;
constexpr Index kGqaGroups = 4;
constexpr Index kDecodeLengths[] = {1, 16, 64, 256, 512, 1024, 2048, 4096};

attn::Tensor<float, 3> random_tensor(Index batch, Index tokens, Index width, std::uint64_t seed) {
  attn::Tensor<float, 3> x({batch, tokens, width});
  attn::Generator generator(seed);
  for (Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>(-1, 1);
  return x;
}

// Query-key pairs a causal (window 0) or sliding-window (window W) mask keeps over T tokens:
// query i sees min(i + 1, W) keys.
double attended_pairs(double tokens, double window) {
  if (window <= 0 || window >= tokens) return tokens * (tokens + 1) / 2;
  return window * (window + 1) / 2 + (tokens - window) * window;
}

// FLOP of a forward over `tokens` new tokens whose queries see `pairs` (query, key) pairs in
// all: the stacked Q, K, V projection (d + 2 kv_dim outputs), out_proj, and the two attention
// products, 2 * 2 * H * D = 4 d per pair (every query head, also when kv heads are shared).
double forward_flops(double batch, double tokens, double d, double kv_dim, double pairs) {
  const double projections = 2.0 * batch * tokens * d * (d + 2.0 * kv_dim) +  // Q, K, V
                             2.0 * batch * tokens * d * d;                    // out_proj
  return projections + 4.0 * batch * d * pairs;
}

void common_counters(benchmark::State& state, double flops, int threads) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = static_cast<double>(threads);
}

// One new token per iteration: 1e-3 / (iterations / seconds) inverted is ms per iteration.
benchmark::Counter ms_per_token() {
  return benchmark::Counter(
      1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

template <typename Layer>
void prepare(Layer& layer, int threads, attn::AttentionPath path = attn::AttentionPath::fused) {
  attn::set_num_threads(threads);  // Eigen::setNbThreads too
  layer.eval();
  layer.set_attention_path(path);
}

// One decode step with L tokens cached.
//
// Every iteration must see the same L cached tokens, but a step appends one and KVCache has no
// rewind. So the cache is restored between steps from a copy of what the prefill left, with the
// timer paused (PauseTiming stops the process CPU clock as well, so CPU / real time is the
// step's own). Why a copy: it is O(L) untimed work per step, where re-running the prefill
// would be O(L^2) (and slower than the step by far at long contexts), and it leaves the timed
// region exactly one forward(x, cache), the step alone, its append of the new key and value
// and the freeing of its output included. The copy has just written the whole cache when the
// step reads it, much as the previous step's reads would have left it in a generation loop.
// Pausing costs a few clock reads per iteration, under 1% of the shortest step.
template <typename Layer>
void decode_cached(benchmark::State& state, const Layer& layer) {
  const Index batch = state.range(kBatch), d = state.range(kModel);
  const Index kv_heads = state.range(kKvHeads), context = state.range(kContext);
  const Index head_dim = d / state.range(kHeads);
  attn::KVCache<float> prefilled(batch, kv_heads, head_dim, context + 1);
  {
    const auto prompt = random_tensor(batch, context, d, 1);
    const auto ignored = layer.forward(prompt.view(), prefilled);
    benchmark::DoNotOptimize(ignored.data());
  }
  const auto x = random_tensor(batch, 1, d, 2);
  attn::KVCache<float> cache = prefilled;
  for (auto _ : state) {
    {
      auto out = layer.forward(x.view(), cache);
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
    state.PauseTiming();
    cache = prefilled;  // back to `context` cached tokens, outside the timed step
    state.ResumeTiming();
  }
  const double b = static_cast<double>(batch), dd = static_cast<double>(d);
  const double kv_dim = static_cast<double>(kv_heads * head_dim);
  const double seen = static_cast<double>(context + 1);  // the new token sees itself too
  common_counters(state, forward_flops(b, 1, dd, kv_dim, seen),
                  static_cast<int>(state.range(kDecodeThreads)));
  const double weight_bytes = 4.0 * (dd * (dd + 2.0 * kv_dim) + dd * dd);
  const double cache_bytes = 4.0 * 2.0 * b * kv_dim * seen;  // keys and values read
  state.counters["GB/s"] = benchmark::Counter((weight_bytes + cache_bytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kv_cache_MiB"] = 4.0 * 2.0 * b * kv_dim * seen / (1024.0 * 1024.0);
  state.counters["ms_per_token"] = ms_per_token();
  state.counters["context"] = static_cast<double>(context);
}

// The same next token without a cache: forward over all L + 1 tokens, whose last row is the
// new token's output (under the causal mask the earlier rows never see it). GFLOP/s counts
// that whole forward: the work this way of decoding does for every new token.
template <typename Layer>
void decode_recompute(benchmark::State& state, const Layer& layer) {
  const Index batch = state.range(kBatch), d = state.range(kModel);
  const Index kv_heads = state.range(kKvHeads), context = state.range(kContext);
  const Index head_dim = d / state.range(kHeads);
  const Index tokens = context + 1;
  const auto sequence = random_tensor(batch, tokens, d, 1);
  for (auto _ : state) {
    auto out = layer.forward(sequence.view());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double t = static_cast<double>(tokens);
  common_counters(state,
                  forward_flops(static_cast<double>(batch), t, static_cast<double>(d),
                                static_cast<double>(kv_heads * head_dim), attended_pairs(t, 0)),
                  static_cast<int>(state.range(kDecodeThreads)));
  state.counters["ms_per_token"] = ms_per_token();
  state.counters["context"] = static_cast<double>(context);
}

attn::MultiHeadAttention<float> mha(const benchmark::State& state, Index context_length) {
  return {state.range(kModel), state.range(kModel), context_length, 0.0f, state.range(kHeads)};
}

attn::GroupedQueryAttention<float> gqa(const benchmark::State& state) {
  return {state.range(kModel), state.range(kModel), 0.0f, state.range(kHeads),
          state.range(kKvHeads)};
}

void BM_Decode_Cached_MHA(benchmark::State& state) {
  auto layer = mha(state, state.range(kContext) + 1);
  prepare(layer, static_cast<int>(state.range(kDecodeThreads)));
  decode_cached(state, layer);
}

// The naive kernel beside the fused one: for one query row the reference path's materialised
// scores are one (H, 1, L + 1) row, and it reads the cached keys and values in place.
void BM_Decode_Cached_MHA_Reference(benchmark::State& state) {
  auto layer = mha(state, state.range(kContext) + 1);
  prepare(layer, static_cast<int>(state.range(kDecodeThreads)), attn::AttentionPath::reference);
  decode_cached(state, layer);
}

void BM_Decode_Cached_GQA(benchmark::State& state) {
  auto layer = gqa(state);
  prepare(layer, static_cast<int>(state.range(kDecodeThreads)));
  decode_cached(state, layer);
}

void BM_Decode_Cached_MQA(benchmark::State& state) {
  BM_Decode_Cached_GQA(state);
}

void BM_Decode_Recompute_MHA(benchmark::State& state) {
  auto layer = mha(state, state.range(kContext) + 1);
  prepare(layer, static_cast<int>(state.range(kDecodeThreads)));
  decode_recompute(state, layer);
}

void BM_Decode_Recompute_GQA(benchmark::State& state) {
  auto layer = gqa(state);
  prepare(layer, static_cast<int>(state.range(kDecodeThreads)));
  decode_recompute(state, layer);
}

void BM_Decode_Recompute_MQA(benchmark::State& state) {
  BM_Decode_Recompute_GQA(state);
}

// Arguments B, d, H, kv, L, threads for every context length, at 1 and 2 threads.
void decode_sizes(benchmark::internal::Benchmark* bench, Index kv_heads) {
  bench->ArgNames({"B", "d", "H", "kv", "L", "threads"});
  for (int threads : {1, 2}) {
    for (Index context : kDecodeLengths) {
      bench->Args({1, kEmbedding, kNumHeads, kv_heads, context, threads});
    }
  }
  bench->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

void mha_sizes(benchmark::internal::Benchmark* bench) {
  decode_sizes(bench, kNumHeads);
}

void gqa_sizes(benchmark::internal::Benchmark* bench) {
  decode_sizes(bench, kGqaGroups);
}

void mqa_sizes(benchmark::internal::Benchmark* bench) {
  decode_sizes(bench, 1);
}

// A prompt of T tokens through MultiHeadAttention at once, causal (window 0) or with a
// sliding window W: the fused kernel skips the key tiles outside the band, so the attention's
// cost grows as T * W rather than T^2 / 2.
void prefill(benchmark::State& state, Index window, int threads) {
  const Index batch = state.range(kPrefillBatch), d = state.range(kPrefillModel);
  const Index tokens = state.range(kTokens);
  attn::MultiHeadAttention<float> layer(d, d, tokens, 0.0f, state.range(kPrefillHeads));
  prepare(layer, threads);
  if (window > 0) layer.set_window(window);
  const auto prompt = random_tensor(batch, tokens, d, 1);
  for (auto _ : state) {
    auto out = layer.forward(prompt.view());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double b = static_cast<double>(batch), t = static_cast<double>(tokens);
  const double dd = static_cast<double>(d);
  common_counters(
      state, forward_flops(b, t, dd, dd, attended_pairs(t, static_cast<double>(window))), threads);
  state.counters["tokens/s"] =
      benchmark::Counter(b * t, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["window"] = static_cast<double>(window);
}

void BM_Prefill_MHA_Fused(benchmark::State& state) {
  prefill(state, 0, static_cast<int>(state.range(kWindowOrThreads)));
}

void BM_Prefill_MHA_Fused_Window(benchmark::State& state) {
  prefill(state, state.range(kWindowOrThreads),
          static_cast<int>(state.range(kWindowOrThreads + 1)));
}

void prefill_sizes(benchmark::internal::Benchmark* bench, bool windowed) {
  if (windowed) {
    bench->ArgNames({"B", "d", "H", "T", "W", "threads"});
  } else {
    bench->ArgNames({"B", "d", "H", "T", "threads"});
  }
  for (int threads : {1, 2}) {
    for (Index tokens : {4096, 16384}) {
      if (windowed) {
        for (Index window : {256, 1024}) {
          bench->Args({1, kEmbedding, kNumHeads, tokens, window, threads});
        }
      } else {
        bench->Args({1, kEmbedding, kNumHeads, tokens, threads});
      }
    }
  }
  bench->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

void causal_prefill_sizes(benchmark::internal::Benchmark* bench) {
  prefill_sizes(bench, false);
}

void window_prefill_sizes(benchmark::internal::Benchmark* bench) {
  prefill_sizes(bench, true);
}

}  // namespace

BENCHMARK(BM_Decode_Cached_MHA)->Apply(mha_sizes);
BENCHMARK(BM_Decode_Cached_MHA_Reference)->Apply(mha_sizes);
BENCHMARK(BM_Decode_Cached_GQA)->Apply(gqa_sizes);
BENCHMARK(BM_Decode_Cached_MQA)->Apply(mqa_sizes);
BENCHMARK(BM_Decode_Recompute_MHA)->Apply(mha_sizes);
BENCHMARK(BM_Decode_Recompute_GQA)->Apply(gqa_sizes);
BENCHMARK(BM_Decode_Recompute_MQA)->Apply(mqa_sizes);
BENCHMARK(BM_Prefill_MHA_Fused)->Apply(causal_prefill_sizes);
BENCHMARK(BM_Prefill_MHA_Fused_Window)->Apply(window_prefill_sizes);
