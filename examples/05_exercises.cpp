// The chapter's exercises. 3.1: SelfAttention_v1 given SelfAttention_v2's weights (transposed:
// nn.Linear stores (d_out, d_in)) computes the same output. 3.2: a wrapper whose two heads have
// d_out = 1 returns 2-dimensional context vectors. 3.3: a GPT-2-sized MultiHeadAttention.
#include "book.hpp"

int main() {
  const auto inputs = book::inputs();

  // Exercise 3.1
  attn::SelfAttentionV2<float> sa_v2(3, 2, false, attn::Generator(789));
  attn::SelfAttentionV1<float> sa_v1(3, 2, attn::Generator(123));
  attn::as_matrix(sa_v1.W_query().view()) =
      attn::as_matrix(sa_v2.W_query().weight().view()).transpose();
  attn::as_matrix(sa_v1.W_key().view()) =
      attn::as_matrix(sa_v2.W_key().weight().view()).transpose();
  attn::as_matrix(sa_v1.W_value().view()) =
      attn::as_matrix(sa_v2.W_value().weight().view()).transpose();
  book::show("Exercise 3.1: sa_v1 with sa_v2's weights", sa_v1.forward(inputs.view()).view());
  book::show("Exercise 3.1: sa_v2", sa_v2.forward(inputs.view()).view());

  // Exercise 3.2
  const auto batch = book::batch_of_two();
  const attn::MultiHeadAttentionWrapper<float> mha(3, 1, 6, 0.0f, 2, false, attn::Generator(123));
  const auto context_vecs = mha.forward(batch.view());
  book::show("Exercise 3.2: context_vecs (torch.manual_seed(123))", context_vecs.view());
  std::printf("context_vecs.shape: %s\n\n", book::size(context_vecs.shape()).c_str());

  // Exercise 3.3
  attn::MultiHeadAttention<float> gpt2(768, 768, 1024, 0.0f, 12);
  std::printf(
      "Exercise 3.3: MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12) has %ld "
      "parameters\n",
      static_cast<long>(attn::parameter_count(gpt2)));
  return 0;
}
