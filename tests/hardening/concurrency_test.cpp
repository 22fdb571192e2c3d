// Eval-mode forward is const and keeps nothing: several threads may call it on one layer at
// once and each gets exactly the single-threaded result. Training-mode forward draws dropout
// masks from the layer's generator; concurrent calls take turns for the draws, so each call's
// result is one of the results of the same calls made one after another. Built under
// ThreadSanitizer too (scripts/test.sh runs it there).
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "attn/attn.hpp"

namespace {

using attn::Index;
using attn::Tensor;

template <typename Layer>
void expect_same_results_from_threads(const Layer& layer, const Tensor<float, 3>& x) {
  const Tensor<float, 3> expected = layer.forward(x.view());
  constexpr int kThreads = 4;
  std::vector<Tensor<float, 3>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 3; ++repeat) results[t] = layer.forward(x.view());
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    ASSERT_EQ(result.shape(), expected.shape());
    for (Index i = 0; i < result.numel(); ++i) {
      ASSERT_EQ(result.data()[i], expected.data()[i]) << "element " << i;
    }
  }
}

Tensor<float, 3> random_input(Index batch, Index tokens, Index features) {
  Tensor<float, 3> x({batch, tokens, features});
  attn::Generator generator(12);
  for (Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>(-1, 1);
  return x;
}

TEST(Concurrency, EvalForwardFromSeveralThreadsMatchesOneThread) {
  const auto x = random_input(2, 150, 32);  // more than one 128-query tile
  attn::MultiHeadAttention<float> mha(32, 32, 256, 0.1f, 4);
  mha.eval();
  for (auto path : {attn::AttentionPath::fused, attn::AttentionPath::reference}) {
    mha.set_attention_path(path);
    expect_same_results_from_threads(mha, x);
  }
  attn::MultiHeadAttentionCombinedQKV<float> combined(32, 32, 256, 0.1f, 4);
  combined.eval();
  expect_same_results_from_threads(combined, x);
  attn::MultiHeadAttentionWrapper<float> wrapper(32, 8, 256, 0.1f, 4);
  wrapper.eval();
  expect_same_results_from_threads(wrapper, x);
  attn::CausalAttention<float> causal(32, 16, 256, 0.1f);
  causal.eval();
  expect_same_results_from_threads(causal, x);
}

bool same(const Tensor<float, 3>& a, const Tensor<float, 3>& b) {
  if (a.shape() != b.shape()) return false;
  for (Index i = 0; i < a.numel(); ++i) {
    if (a.data()[i] != b.data()[i]) return false;
  }
  return true;
}

// Two threads each make one training forward (with dropout) on the same layer. A copy of the
// layer, holding the same generator state, makes the two calls one after the other: the
// threads' results must be those two, in one order or the other.
template <typename Layer>
void expect_sequential_results_from_training_threads(const Layer& layer,
                                                     const Tensor<float, 3>& x) {
  for (int round = 0; round < 4; ++round) {
    layer.dropout_generator().manual_seed(static_cast<std::uint64_t>(100 + round));
    Layer sequential = layer;
    const Tensor<float, 3> first = sequential.forward(x.view());
    const Tensor<float, 3> second = sequential.forward(x.view());
    ASSERT_FALSE(same(first, second)) << "dropout should draw different masks";
    Tensor<float, 3> results[2];
    typename Layer::Cache caches[2];
    std::thread a([&] { results[0] = layer.forward(x.view(), caches[0]); });
    std::thread b([&] { results[1] = layer.forward(x.view(), caches[1]); });
    a.join();
    b.join();
    EXPECT_TRUE((same(results[0], first) && same(results[1], second)) ||
                (same(results[0], second) && same(results[1], first)))
        << "round " << round;
  }
}

TEST(Concurrency, TrainingForwardFromTwoThreadsEqualsTwoCallsInTurn) {
  const auto x = random_input(2, 20, 16);
  attn::MultiHeadAttention<float> mha(16, 16, 32, 0.3f, 4);
  expect_sequential_results_from_training_threads(mha, x);
  attn::MultiHeadAttentionCombinedQKV<float> combined(16, 16, 32, 0.3f, 4);
  expect_sequential_results_from_training_threads(combined, x);
  attn::CausalAttention<float> causal(16, 8, 32, 0.3f);
  expect_sequential_results_from_training_threads(causal, x);
}

}  // namespace

// Decoding with a KV cache while threads would idle (one head, one sequence): the cached keys
// are split over attn's threads and the pieces merged; concurrent decodes on separate caches of
// one layer each get the result of decoding alone.
TEST(Concurrency, SplitKeyDecodingFromSeveralThreadsMatchesAlone) {
  attn::MultiHeadAttention<float> layer(16, 16, 2048, 0.0f, 1, false, attn::Generator(5));
  layer.eval();
  const Tensor<float, 3> x = random_input(1, 700, 16);
  const auto decode = [&](attn::KVCache<float>& cache) {
    layer.forward(Tensor<float, 3>(attn::slice(x.view(), 1, 0, 690)).view(), cache);
    Tensor<float, 3> last;
    for (Index t = 690; t < 700; ++t) {
      last = layer.forward(Tensor<float, 3>(attn::slice(x.view(), 1, t, t + 1)).view(), cache);
    }
    return last;
  };
  attn::KVCache<float> alone_cache(1, 1, 16, 700);
  const Tensor<float, 3> alone = decode(alone_cache);
  constexpr int kThreads = 3;
  std::vector<Tensor<float, 3>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      attn::KVCache<float> cache(1, 1, 16, 700);
      results[t] = decode(cache);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    ASSERT_EQ(result.shape(), alone.shape());
    for (Index i = 0; i < result.numel(); ++i) ASSERT_EQ(result.data()[i], alone.data()[i]);
  }
}
