// Section 3.4: self-attention with trainable weights W_query, W_key, W_value, scaled by
// 1/sqrt(d_k). Step by step for query 2 with the book's torch.manual_seed(123) weights, then the
// SelfAttention_v1 (raw matrices, seed 123) and SelfAttention_v2 (nn.Linear, seed 789) classes.
#include "book.hpp"

#include <cmath>

int main() {
  const auto inputs = book::inputs();
  const auto x = attn::as_matrix(inputs.view());
  const attn::Index d_in = 3, d_out = 2;

  // torch.manual_seed(123); W_query, W_key, W_value = torch.rand(d_in, d_out) three times.
  // SelfAttentionV1 draws its weights in exactly that order, so its matrices are the book's.
  attn::SelfAttentionV1<float> sa_v1(d_in, d_out, attn::Generator(123));
  const auto W_query = attn::as_matrix(sa_v1.W_query().view());
  const auto W_key = attn::as_matrix(sa_v1.W_key().view());
  const auto W_value = attn::as_matrix(sa_v1.W_value().view());

  attn::Tensor<float, 1> query_2({d_out});
  attn::as_vector(query_2.view()) = (x.row(1) * W_query).transpose();
  book::show("query_2", query_2.view());

  attn::Tensor<float, 2> keys({6, d_out}), values({6, d_out});
  attn::as_matrix(keys.view()) = x * W_key;
  attn::as_matrix(values.view()) = x * W_value;
  std::printf("keys.shape: %s\nvalues.shape: %s\n\n", book::size(keys.shape()).c_str(),
              book::size(values.shape()).c_str());

  const auto q2 = attn::as_vector(query_2.view());
  book::show_scalar("attn_score_22", q2.dot(attn::as_matrix(keys.view()).row(1).transpose()));

  attn::Tensor<float, 1> attn_scores_2({6}), attn_weights_2({6}), context_vec_2({d_out});
  attn::as_vector(attn_scores_2.view()) = attn::as_matrix(keys.view()) * q2;
  book::show("attn_scores_2", attn_scores_2.view());

  // Scale by 1/sqrt(d_k) before the softmax: large dot products would make it too peaked.
  const float d_k = static_cast<float>(keys.size(1));
  attn::as_vector(attn_weights_2.view()) = attn::as_vector(attn_scores_2.view()) / std::sqrt(d_k);
  attn::softmax(attn::reshape<2>(attn_weights_2.view(), {1, 6}),
                attn::reshape<2>(attn_weights_2.view(), {1, 6}));
  book::show("attn_weights_2", attn_weights_2.view());

  attn::as_vector(context_vec_2.view()) =
      attn::as_matrix(values.view()).transpose() * attn::as_vector(attn_weights_2.view());
  book::show("context_vec_2", context_vec_2.view());

  // 3.4.2: the same as classes. Row 2 of v1's output is context_vec_2.
  book::show("SelfAttention_v1 (torch.manual_seed(123))", sa_v1.forward(inputs.view()).view());
  const attn::SelfAttentionV2<float> sa_v2(d_in, d_out, /*qkv_bias=*/false, attn::Generator(789));
  book::show("SelfAttention_v2 (torch.manual_seed(789))", sa_v2.forward(inputs.view()).view());
  return 0;
}
