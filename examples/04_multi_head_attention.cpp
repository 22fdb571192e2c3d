// Section 3.6: multi-head attention. First a wrapper that runs several CausalAttention heads and
// concatenates them, then MultiHeadAttention, which splits one set of projections into heads
// (a view, no copy), attends in all heads at once and mixes them with an output projection.
#include "book.hpp"

int main() {
  const auto batch = book::batch_of_two();
  const attn::Index context_length = batch.size(1), d_in = 3, d_out = 2;

  // 3.6.1: two heads of d_out = 2 each, concatenated: 4 columns.
  const attn::MultiHeadAttentionWrapper<float> wrapper(d_in, d_out, context_length, 0.0f,
                                                       /*num_heads=*/2, false,
                                                       attn::Generator(123));
  const auto wrapped = wrapper.forward(batch.view());
  book::show("MultiHeadAttentionWrapper context_vecs (torch.manual_seed(123))", wrapped.view());
  std::printf("context_vecs.shape: %s\n\n", book::size(wrapped.shape()).c_str());

  // 3.6.2: batched matrix products over heads, as the book shows on a (1, 2, 3, 4) tensor:
  // a @ a.transpose(2, 3) multiplies every head's (3, 4) block by its own transpose.
  const attn::Tensor<float, 4> a({1, 2, 3, 4}, {0.2745f, 0.6584f, 0.2775f, 0.8573f,  //
                                                0.8993f, 0.0390f, 0.9268f, 0.7388f,  //
                                                0.7179f, 0.7058f, 0.9156f, 0.4340f,  //
                                                0.0772f, 0.3565f, 0.1479f, 0.5331f,  //
                                                0.4066f, 0.2318f, 0.4545f, 0.9737f,  //
                                                0.4606f, 0.5159f, 0.4220f, 0.5786f});
  attn::Tensor<float, 4> products({1, 2, 3, 3});
  for (attn::Index h = 0; h < 2; ++h) {
    const auto head = attn::as_matrix(attn::select(attn::select(a.view(), 0, 0), 0, h));
    attn::as_matrix(attn::select(attn::select(products.view(), 0, 0), 0, h)) =
        head * head.transpose();
  }
  book::show("a @ a.transpose(2, 3)", products.view());

  const attn::MultiHeadAttention<float> mha(d_in, d_out, context_length, 0.0f, /*num_heads=*/2,
                                            false, attn::Generator(123));
  const auto context_vecs = mha.forward(batch.view());
  book::show("MultiHeadAttention context_vecs (torch.manual_seed(123))", context_vecs.view());
  std::printf("context_vecs.shape: %s\n\n", book::size(context_vecs.shape()).c_str());

  // What each head attends to, as pictures: forward_with_weights also returns the book's
  // attn_weights, (batch, heads, T, T); batch 0's, head by head.
  const auto weights = mha.forward_with_weights(batch.view()).weights;
  for (attn::Index h = 0; h < mha.num_heads(); ++h) {
    book::write_heatmaps("multi_head_attention_head" + std::to_string(h),
                         attn::select(attn::select(weights.view(), 0, 0), 0, h),
                         "MultiHeadAttention (seed 123), head " + std::to_string(h));
  }
  return 0;
}
