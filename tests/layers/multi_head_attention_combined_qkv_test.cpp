#include "attn/layers/multi_head_attention_combined_qkv.hpp"

#include <gtest/gtest.h>

#include "attn/layers/multi_head_attention.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

template <typename Scalar>
attn::MultiHeadAttentionCombinedQKV<Scalar> make_combined(const attn::io::SafetensorsFile& io,
                                                          attn::Generator& generator) {
  using attn_test::metadata_int;
  return attn::MultiHeadAttentionCombinedQKV<Scalar>(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), metadata_int(io, "context_length"),
      Scalar(0), metadata_int(io, "num_heads"), metadata_int(io, "qkv_bias") != 0, generator);
}

TEST(MultiHeadAttentionCombinedQKV, MatchesPyTorchFixtures) {
  for (const char* name : {"mha_combined_qkv", "mha_combined_qkv_12heads"}) {
    attn_test::check_layer_fixture<3>(name, make_combined<float>);
  }
}

TEST(MultiHeadAttentionCombinedQKV, SameMathsAsMultiHeadAttentionWithStackedWeights) {
  attn::MultiHeadAttention<double> separate(5, 6, 8, 0.0, 3, true, attn::Generator(4));
  attn::MultiHeadAttentionCombinedQKV<double> combined(5, 6, 8, 0.0, 3, true);
  auto stacked = attn::as_matrix(combined.qkv().weight().view());
  stacked.topRows(6) = attn::as_matrix(separate.W_query_weight());
  stacked.middleRows(6, 6) = attn::as_matrix(separate.W_key_weight());
  stacked.bottomRows(6) = attn::as_matrix(separate.W_value_weight());
  auto bias = attn::as_vector(combined.qkv().bias().view());
  bias.head(6) = attn::as_vector(separate.W_query_bias());
  bias.segment(6, 6) = attn::as_vector(separate.W_key_bias());
  bias.tail(6) = attn::as_vector(separate.W_value_bias());
  combined.proj().weight() = separate.out_proj().weight();
  combined.proj().bias() = separate.out_proj().bias();
  attn::Tensor<double, 3> x({2, 7, 5});
  attn::Generator generator(9);
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<double>(-1, 1);
  // Against the layer's output scale ||Wo||_2 ||context||_F + sqrt(rows) |bo| (layer_scales).
  const attn_test::LayerScales scales =
      attn_test::layer_scales(attn::state_dict(separate), x, nullptr, 3);
  EXPECT_TRUE(attn_test::close_normwise(combined.forward(x.view()), separate.forward(x.view()),
                                        scales.out, scales.tolerance<double>()));
}

TEST(MultiHeadAttentionCombinedQKV, StateNamesFollowTheNotebook) {
  attn::MultiHeadAttentionCombinedQKV<float> mha(6, 8, 8, 0.0f, 2);
  const auto dict = attn::state_dict(mha);
  EXPECT_EQ(dict.size(), 4u);
  EXPECT_EQ(dict.at("qkv.weight").shape, (std::vector<attn::Index>{24, 6}));
  EXPECT_EQ(dict.count("proj.bias"), 1u);
  EXPECT_EQ(dict.count("mask"), 1u);
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionCombinedQKV<float>(6, 9, 8, 0.0f, 2),
                    std::invalid_argument, {"d_out (9)", "num_heads (2)"});
}

TEST(MultiHeadAttentionCombinedQKV, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"mha_combined_qkv", "mha_combined_qkv_12heads"}) {
    attn_test::check_layer_gradients<float, 3>(name, make_combined<float>);
    attn_test::check_layer_gradients<double, 3>(name, make_combined<double>);
  }
}

TEST(MultiHeadAttentionCombinedQKV, GradientCheck) {
  attn::MultiHeadAttentionCombinedQKV<double> layer(4, 6, 8, 0.0, 2, false, attn::Generator(2));
  layer.eval();
  attn::Generator generator(3);
  attn_test::check_layer_by_finite_differences(layer,
                                               attn_test::random_tensor<3>({2, 6, 4}, generator));
}

}  // namespace
