// The GPT-2 (small) sized attention module of exercise 3.3 at work: 12 heads over a
// 768-dimensional embedding, a batch of 8 sequences of 1024 tokens, causal, float32, with the
// fused kernel (the default in eval mode). Prints the parameter count and the forward's time.
//
//   attn_06_gpt2_sized_attention [threads]
#include "book.hpp"

#include <chrono>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc > 1) attn::set_num_threads(std::atoi(argv[1]));
  attn::MultiHeadAttention<float> mha(768, 768, 1024, 0.0f, 12);
  mha.eval();
  std::printf(
      "MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, "
      "num_heads=12)\nparameters: %ld\n",
      static_cast<long>(attn::parameter_count(mha)));

  attn::Tensor<float, 3> x({8, 1024, 768});
  attn::Generator generator(0);
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>();
  mha.forward(x.view());  // warm-up: first-touch page faults, thread start-up
  const auto start = std::chrono::steady_clock::now();
  const auto out = mha.forward(x.view());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("output shape: %s\n", book::size(out.shape()).c_str());
  std::printf("forward of (8, 1024, 768), causal, float32, %d threads: %.0f ms\n",
              attn::num_threads(), ms);
  return 0;
}
