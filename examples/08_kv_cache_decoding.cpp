// Generating with a KV cache (the book's bonus notebook ch04/03_kv-cache): a GPT-2-sized
// grouped-query attention layer with RoPE (Llama style) reads a 256-token prompt once, then
// takes one new token at a time. Each step attends to everything cached instead of recomputing
// the whole sequence, and its output equals the full forward's. The second half does the same
// with a sliding window of 128 positions: the cache is a ring that never holds more.
//
//   attn_08_kv_cache_decoding
#include <algorithm>
#include <attn/attn.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace {

using attn::Index;
using Layer = attn::GroupedQueryAttention<float>;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Prefill `prompt` tokens of x, then decode the rest one token at a time; returns the largest
/// difference from the full forward's outputs and prints the time per decoded token.
float decode(const Layer& layer, attn::KVCache<float>& cache, const attn::Tensor<float, 3>& x,
             const attn::Tensor<float, 3>& full, Index prompt) {
  const Index tokens = x.size(1);
  float worst = 0;
  const auto compare = [&](const attn::Tensor<float, 3>& out, Index first) {
    for (Index t = 0; t < out.size(1); ++t) {
      for (Index c = 0; c < out.size(2); ++c) {
        worst = std::max(worst, std::abs(out(0, t, c) - full(0, first + t, c)));
      }
    }
  };
  compare(layer.forward(attn::Tensor<float, 3>(attn::slice(x.view(), 1, 0, prompt)).view(), cache),
          0);
  const auto start = std::chrono::steady_clock::now();
  for (Index t = prompt; t < tokens; ++t) {
    const attn::Tensor<float, 3> token(attn::slice(x.view(), 1, t, t + 1));
    compare(layer.forward(token.view(), cache), t);
  }
  std::printf("  %td tokens decoded, %.3f ms per token; the cache holds %td of %td positions\n",
              tokens - prompt, 1e3 * seconds_since(start) / double(tokens - prompt), cache.held(),
              cache.size());
  return worst;
}

}  // namespace

int main() {
  const Index d_model = 768, num_heads = 12, num_kv_groups = 4, head_dim = d_model / num_heads;
  const Index prompt = 256, tokens = 320, window = 128;
  Layer layer(d_model, d_model, /*dropout=*/0.0f, num_heads, num_kv_groups, /*qkv_bias=*/false,
              attn::Generator(123));
  layer.eval();
  layer.set_rope(/*theta_base=*/10000.0f, /*context_length=*/4096);

  attn::Generator generator(7);
  attn::Tensor<float, 3> x({1, tokens, d_model});
  for (Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>(-1, 1);

  const auto start = std::chrono::steady_clock::now();
  const attn::Tensor<float, 3> full = layer.forward(x.view());
  std::printf(
      "GroupedQueryAttention(d_in=%td, d_out=%td, num_heads=%td, num_kv_groups=%td), "
      "RoPE; full forward over %td tokens: %.1f ms\n",
      d_model, d_model, num_heads, num_kv_groups, tokens, 1e3 * seconds_since(start));

  std::printf("KV cache: prefill %td tokens, then one at a time\n", prompt);
  attn::KVCache<float> cache(/*batch=*/1, num_kv_groups, head_dim, /*capacity=*/tokens);
  const float cached = decode(layer, cache, x, full, prompt);

  std::printf("Sliding window of %td positions, ring cache of %td slots\n", window, window);
  layer.set_window(window);
  const attn::Tensor<float, 3> full_windowed = layer.forward(x.view());
  auto ring = attn::KVCache<float>::with_window(1, num_kv_groups, head_dim, window);
  const float windowed = decode(layer, ring, x, full_windowed, prompt);

  // float32: two orders of summation agree to a few units in the last place of the outputs.
  const bool match = cached <= 1e-5f && windowed <= 1e-5f;
  std::printf("cached decoding %s the full forward (max |difference| %.1e, windowed %.1e)\n",
              match ? "matches" : "DOES NOT MATCH", double(cached), double(windowed));
  return match ? 0 : 1;
}
