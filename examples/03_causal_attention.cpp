// Section 3.5: causal attention. Hide the future from each token with a mask (first by zeroing
// and renormalising the weights, then the efficient way with -inf before the softmax), drop
// weights at random during training, and wrap it all in CausalAttention over a batch.
#include "book.hpp"

#include <cmath>
#include <limits>

int main() {
  const auto inputs = book::inputs();
  const attn::Index d_in = 3, d_out = 2, context_length = 6;

  // 3.5.1: the weights of SelfAttention_v2 (seed 789), before any masking.
  attn::SelfAttentionV2<float> sa_v2(d_in, d_out, false, attn::Generator(789));
  const auto queries = sa_v2.W_query().forward(inputs.view());
  const auto keys = sa_v2.W_key().forward(inputs.view());
  attn::Tensor<float, 2> attn_scores({6, 6}), attn_weights({6, 6});
  attn::as_matrix(attn_scores.view()) =
      attn::as_matrix(queries.view()) * attn::as_matrix(keys.view()).transpose();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d_out));
  attn::as_matrix(attn_weights.view()) = attn::as_matrix(attn_scores.view()) * scale;
  attn::softmax(attn_weights.view(), attn_weights.view());
  book::show("attn_weights", attn_weights.view());

  // Zero above the diagonal with tril(ones), then renormalise each row to sum to 1.
  attn::Tensor<float, 2> mask_simple({6, 6}), masked_simple({6, 6}), masked_simple_norm({6, 6});
  attn::as_matrix(mask_simple.view()) =
      Eigen::MatrixXf::Ones(6, 6).triangularView<Eigen::Lower>().toDenseMatrix();
  book::show("mask_simple", mask_simple.view());
  attn::as_matrix(masked_simple.view()) =
      attn::as_matrix(attn_weights.view()).cwiseProduct(attn::as_matrix(mask_simple.view()));
  book::show("masked_simple", masked_simple.view());
  const auto ms = attn::as_matrix(masked_simple.view());
  attn::as_matrix(masked_simple_norm.view()) = ms.array().colwise() / ms.rowwise().sum().array();
  book::show("masked_simple_norm", masked_simple_norm.view());

  // The efficient way: -inf where triu(ones, diagonal=1) is 1, and softmax does the rest.
  const auto mask = attn::causal_mask(context_length, context_length);
  attn::Tensor<float, 2> masked(attn_scores);
  for (attn::Index i = 0; i < 6; ++i) {
    for (attn::Index j = 0; j < 6; ++j) {
      if (mask(i, j)) masked(i, j) = -std::numeric_limits<float>::infinity();
    }
  }
  book::show("masked", masked.view());
  attn::as_matrix(attn_weights.view()) = attn::as_matrix(masked.view()) * scale;
  attn::softmax(attn_weights.view(), attn_weights.view());
  book::show("attn_weights", attn_weights.view());
  book::write_heatmaps("causal_attention_weights", attn_weights.view(),
                       "Causal attention weights (SelfAttention_v2, seed 789)");

  // 3.5.2: dropout 0.5 zeroes about half the entries and doubles the rest. Generator(123) draws
  // torch.manual_seed(123)'s masks.
  attn::Tensor<float, 2> example({6, 6}, 1.0f);
  attn::Generator generator(123);
  attn::dropout(example.view(), 0.5f, /*training=*/true, generator);
  book::show("dropout(example)", example.view());
  attn::Tensor<float, 2> dropped(attn_weights);
  generator = attn::Generator(123);
  attn::dropout(dropped.view(), 0.5f, /*training=*/true, generator);
  book::show("dropout(attn_weights)", dropped.view());

  // 3.5.3: CausalAttention on the book's batch of two identical sequences.
  const auto batch = book::batch_of_two();
  std::printf("batch.shape: %s\n\n", book::size(batch.shape()).c_str());
  const attn::CausalAttention<float> ca(d_in, d_out, context_length, 0.0f, false,
                                        attn::Generator(123));
  const auto context_vecs = ca.forward(batch.view());
  book::show("context_vecs (torch.manual_seed(123))", context_vecs.view());
  std::printf("context_vecs.shape: %s\n", book::size(context_vecs.shape()).c_str());
  return 0;
}
