// The attn demo: a walk up the attention ladder of "Build a Large Language Model (From
// Scratch)", chapter 3, on the book's six-token input "Your journey starts with one step".
// With the book's seeds, each rung prints the numbers the book prints.
#include <attn/attn.hpp>
#include <chrono>

#include <cstdio>
#include <string>
#include "book.hpp"

namespace {

// Prints a 2-D view the way PyTorch prints a tensor, four decimals.
template <typename T>
void print(const char* title, const attn::TensorView<T, 2>& view) {
  std::printf("%s %s\ntensor([", title, attn::to_string(view.shape()).c_str());
  for (attn::Index i = 0; i < view.size(0); ++i) {
    std::printf("%s[", i ? ",\n        " : "");
    for (attn::Index j = 0; j < view.size(1); ++j) {
      std::printf("%s%7.4f", j ? ", " : "", static_cast<double>(view(i, j)));
    }
    std::printf("]");
  }
  std::printf("])\n\n");
}

}  // namespace

int main() {
  std::printf("attn %d.%d.%d on Eigen %d.%d.%d: the attention ladder of chapter 3\n\n",
              ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR, ATTN_VERSION_PATCH, EIGEN_WORLD_VERSION,
              EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);

  const auto inputs = book::inputs();  // "Your journey starts with one step"
  print("inputs", inputs.view());

  std::printf("== 3.3 Simplified self-attention: softmax(x x^T) x, no weights\n");
  attn::Tensor<float, 2> weights({6, 6});
  const auto simplified = attn::simplified_self_attention(inputs.view(), weights.view());
  print("attn_weights", weights.view());
  book::write_heatmaps("simplified_attention_weights", weights.view(),
                       "Simplified self-attention: softmax(x x^T)");
  print("all_context_vecs (book row 1: [0.4421, 0.5931, 0.5790])", simplified.view());

  std::printf("== 3.4 Trainable self-attention, scaled by 1/sqrt(d_out)\n");
  const attn::SelfAttentionV1<float> sa_v1(3, 2, attn::Generator(123));
  print("SelfAttentionV1, seed 123 (book: [[0.2996, 0.8053], ...])",
        sa_v1.forward(inputs.view()).view());
  const attn::SelfAttentionV2<float> sa_v2(3, 2, false, attn::Generator(789));
  print("SelfAttentionV2, seed 789 (book: [[-0.0739, 0.0713], ...])",
        sa_v2.forward(inputs.view()).view());

  std::printf("== 3.5 Causal attention on a batch of two, context_length 6\n");
  const auto batch = book::batch_of_two();
  const attn::CausalAttention<float> ca(3, 2, 6, 0.0f, false, attn::Generator(123));
  const auto causal = ca.forward(batch.view());
  std::printf("context_vecs.shape: %s\n", attn::to_string(causal.shape()).c_str());
  print("context_vecs[0], seed 123 (book: [[-0.4519, 0.2216], ...])",
        attn::select(causal.view(), 0, 0));

  attn::SelfAttentionV2<float> sa_for_mask(3, 2, false, attn::Generator(789));
  {
    // The causal weights of 3.5.1: SelfAttention_v2's queries and keys through the kernel.
    const auto q = sa_for_mask.W_query().forward(inputs.view());
    const auto k = sa_for_mask.W_key().forward(inputs.view());
    const auto v = sa_for_mask.W_value().forward(inputs.view());
    attn::Tensor<float, 2> out({6, 2}), causal_weights({6, 6});
    attn::AttentionOptions<float> options;
    options.mask = attn::Mask::causal();
    attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                       causal_weights.view());
    print("causal attn_weights (book 3.5.1: [[1.0000, 0.0000, ...], [0.5517, 0.4483, ...], ...])",
          causal_weights.view());
    book::write_heatmaps("causal_attention_weights", causal_weights.view(),
                         "Causal attention weights (SelfAttention_v2, seed 789)");
  }

  std::printf("== 3.6 Multi-head attention\n");
  const attn::MultiHeadAttentionWrapper<float> wrapper(3, 2, 6, 0.0f, 2, false,
                                                       attn::Generator(123));
  print("MultiHeadAttentionWrapper, 2 heads, seed 123: context_vecs[0]",
        attn::select(wrapper.forward(batch.view()).view(), 0, 0));
  attn::MultiHeadAttention<float> mha(3, 2, 6, 0.0f, 2, false, attn::Generator(123));
  print("MultiHeadAttention, 2 heads, seed 123 (book: [[0.3190, 0.4858], ...]): context_vecs[0]",
        attn::select(mha.forward(batch.view()).view(), 0, 0));
  const auto head_weights = mha.forward_with_weights(batch.view()).weights;  // (B, H, T, T)
  for (attn::Index h = 0; h < mha.num_heads(); ++h) {
    book::write_heatmaps("multi_head_attention_head" + std::to_string(h),
                         attn::select(attn::select(head_weights.view(), 0, 0), 0, h),
                         "MultiHeadAttention (seed 123), head " + std::to_string(h));
  }
  const attn::MultiHeadAttentionCombinedQKV<float> fused(3, 2, 6, 0.0f, 2);
  print("MultiHeadAttentionCombinedQKV, 2 heads (its own random weights): context_vecs[0]",
        attn::select(fused.forward(batch.view()).view(), 0, 0));

  std::printf("== Exercise 3.3: a GPT-2 small sized MultiHeadAttention(768, 768, 1024, 0.0, 12)\n");
  attn::MultiHeadAttention<float> gpt2(768, 768, 1024, 0.0f, 12);
  gpt2.eval();
  std::printf("parameters: %ld (book: 2,360,064)\n",
              static_cast<long>(attn::parameter_count(gpt2)));
  // The reference configuration: a batch of 8 sequences of 1024 tokens, eval mode (the fused
  // kernel), after one warm-up call.
  attn::Tensor<float, 3> x({8, 1024, 768});
  attn::Generator generator(0);
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>();
  gpt2.forward(x.view());
  const auto start = std::chrono::steady_clock::now();
  const auto out = gpt2.forward(x.view());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "forward of (8, 1024, 768), causal, float32, fused kernel, %d threads: %.0f ms -> %s\n",
      attn::num_threads(), ms, attn::to_string(out.shape()).c_str());
  std::printf("\nHeatmaps (SVG and PNG) of the weights above are in %s/heatmaps.\n",
              std::filesystem::current_path().c_str());
  return 0;
}
