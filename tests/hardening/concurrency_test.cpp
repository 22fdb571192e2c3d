// Eval-mode forward is const and keeps nothing: several threads may call it on one layer at
// once and each gets exactly the single-threaded result. Built under ThreadSanitizer too.
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

}  // namespace
