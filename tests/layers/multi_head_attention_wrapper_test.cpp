#include "attn/layers/multi_head_attention_wrapper.hpp"

#include <gtest/gtest.h>

#include "support/book_inputs.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

template <typename Scalar>
attn::MultiHeadAttentionWrapper<Scalar> make_wrapper(const attn::io::SafetensorsFile& io,
                                                     attn::Generator& generator) {
  using attn_test::metadata_int;
  return attn::MultiHeadAttentionWrapper<Scalar>(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), metadata_int(io, "context_length"),
      Scalar(0), metadata_int(io, "num_heads"), metadata_int(io, "qkv_bias") != 0, generator);
}

TEST(MultiHeadAttentionWrapper, MatchesPyTorchFixtures) {
  for (const char* name : {"mha_wrapper_book", "mha_wrapper_exercise_3_2", "mha_wrapper_bias"}) {
    attn_test::check_layer_fixture<3>(name, make_wrapper<float>);
  }
}

TEST(MultiHeadAttentionWrapper, BookBatchAfterManualSeed123) {
  const attn::MultiHeadAttentionWrapper<float> mha(3, 2, 6, 0.0f, 2, false, attn::Generator(123));
  const auto out = mha.forward(attn_test::book_batch().view());
  ASSERT_EQ(out.shape(), (attn::Shape<3>{2, 6, 4}));
  const attn::Tensor<float, 2> book(
      {6, 4}, {-0.4519f, 0.2216f,  0.4772f, 0.1063f, -0.5874f, 0.0058f,  0.5891f, 0.3257f,
               -0.6300f, -0.0632f, 0.6202f, 0.3860f, -0.5675f, -0.0843f, 0.5478f, 0.3589f,
               -0.5526f, -0.0981f, 0.5321f, 0.3428f, -0.5299f, -0.1081f, 0.5077f, 0.3493f});
  EXPECT_TRUE(attn_test::all_close(attn::select(out.view(), 0, 1), book.view(), 5e-5));
}

TEST(MultiHeadAttentionWrapper, Exercise32TwoDimensionalContextVectors) {
  const attn::MultiHeadAttentionWrapper<float> mha(3, 1, 6, 0.0f, 2);
  const auto out = mha.forward(attn_test::book_batch().view());
  EXPECT_EQ(out.shape(), (attn::Shape<3>{2, 6, 2}));
}

TEST(MultiHeadAttentionWrapper, StateNamesAreNumberedHeads) {
  attn::MultiHeadAttentionWrapper<float> mha(3, 2, 6, 0.0f, 2);
  const auto dict = attn::state_dict(mha);
  EXPECT_EQ(dict.size(), 8u);
  EXPECT_EQ(dict.count("heads.1.W_key.weight"), 1u);
  EXPECT_EQ(dict.count("heads.0.mask"), 1u);
  ATTN_EXPECT_ERROR((attn::MultiHeadAttentionWrapper<float>(3, 2, 6, 0.0f, 0)),
                    std::invalid_argument, {"num_heads (0)"});
}

TEST(MultiHeadAttentionWrapper, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"mha_wrapper_book", "mha_wrapper_exercise_3_2", "mha_wrapper_bias"}) {
    attn_test::check_layer_gradients<float, 3>(name, make_wrapper<float>);
    attn_test::check_layer_gradients<double, 3>(name, make_wrapper<double>);
  }
}

TEST(MultiHeadAttentionWrapper, GradientCheck) {
  attn::MultiHeadAttentionWrapper<double> layer(4, 3, 8, 0.0, 2, true, attn::Generator(2));
  layer.eval();
  attn::Generator generator(3);
  attn_test::check_layer_by_finite_differences(layer,
                                               attn_test::random_tensor<3>({2, 5, 4}, generator));
}

}  // namespace
