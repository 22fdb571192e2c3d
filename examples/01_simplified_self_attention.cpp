// Sections 3.3.1 and 3.3.2: self-attention without trainable weights. Attention scores are dot
// products of the inputs, softmax turns them into weights, and each context vector is the
// weighted sum of all inputs. First for query x^2 ("journey") step by step, then for all six
// at once with matrix products, and finally with attn::simplified_self_attention.
#include "book.hpp"

int main() {
  const auto inputs = book::inputs();
  const auto x = attn::as_matrix(inputs.view());  // (6, 3) as an Eigen matrix, no copy

  // 3.3.1: the scores of query 2 against every input, ω_2i = x^2 · x^i.
  attn::Tensor<float, 1> attn_scores_2({6});
  attn::as_vector(attn_scores_2.view()) = x * x.row(1).transpose();
  book::show("attn_scores_2", attn_scores_2.view());

  // Normalise them: by the sum, the naive exp/sum softmax, and the stable softmax.
  attn::Tensor<float, 1> weights_2_tmp({6}), weights_2_naive({6}), attn_weights_2({6});
  const auto scores = attn::as_vector(attn_scores_2.view());
  attn::as_vector(weights_2_tmp.view()) = scores / scores.sum();
  book::show("Attention weights (divided by the sum):", weights_2_tmp.view());
  attn::as_vector(weights_2_naive.view()) = scores.array().exp() / scores.array().exp().sum();
  book::show("Attention weights (softmax_naive):", weights_2_naive.view());
  attn::softmax(attn::reshape<2>(attn_scores_2.view(), {1, 6}),
                attn::reshape<2>(attn_weights_2.view(), {1, 6}));
  book::show("Attention weights (softmax):", attn_weights_2.view());

  // The context vector of query 2: the inputs weighted by its attention weights.
  attn::Tensor<float, 1> context_vec_2({3});
  attn::as_vector(context_vec_2.view()) = x.transpose() * attn::as_vector(attn_weights_2.view());
  book::show("context_vec_2", context_vec_2.view());

  // 3.3.2: every query at once. attn_scores = inputs @ inputs.T, softmax row by row, then
  // all_context_vecs = attn_weights @ inputs.
  attn::Tensor<float, 2> attn_scores({6, 6}), attn_weights({6, 6}), all_context_vecs({6, 3});
  attn::as_matrix(attn_scores.view()) = x * x.transpose();
  book::show("attn_scores", attn_scores.view());
  attn::softmax(attn_scores.view(), attn_weights.view());
  book::show("attn_weights", attn_weights.view());
  book::write_heatmaps("simplified_attention_weights", attn_weights.view(),
                       "Simplified self-attention: softmax(x x^T)");
  attn::as_matrix(all_context_vecs.view()) = attn::as_matrix(attn_weights.view()) * x;
  book::show("all_context_vecs", all_context_vecs.view());

  // The same through attn's first rung, which calls the shared kernel with scale 1, no mask.
  book::show("simplified_self_attention(inputs)",
             attn::simplified_self_attention(inputs.view()).view());
  return 0;
}
