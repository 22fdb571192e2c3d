#include "attn/layers/self_attention_v2.hpp"

#include <gtest/gtest.h>

#include "support/book_inputs.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

template <typename Scalar>
attn::SelfAttentionV2<Scalar> make_v2(const attn::io::SafetensorsFile& io,
                                      attn::Generator& generator) {
  return attn::SelfAttentionV2<Scalar>(attn_test::metadata_int(io, "d_in"),
                                       attn_test::metadata_int(io, "d_out"),
                                       attn_test::metadata_int(io, "qkv_bias") != 0, generator);
}

TEST(SelfAttentionV2, MatchesPyTorchFixtures) {
  for (const char* name : {"self_attention_v2_book", "self_attention_v2_bias"}) {
    attn_test::check_layer_fixture<2>(name, [](const auto& io, attn::Generator& generator) {
      return attn::SelfAttentionV2<float>(attn_test::metadata_int(io, "d_in"),
                                          attn_test::metadata_int(io, "d_out"),
                                          attn_test::metadata_int(io, "qkv_bias") != 0, generator);
    });
  }
}

TEST(SelfAttentionV2, BookOutputAfterManualSeed789) {
  const attn::SelfAttentionV2<float> sa_v2(3, 2, false, attn::Generator(789));
  const auto out = sa_v2.forward(attn_test::book_inputs().view());
  const attn::Tensor<float, 2> book(
      {6, 2}, {-0.0739f, 0.0713f, -0.0748f, 0.0703f, -0.0749f, 0.0702f, -0.0760f, 0.0685f, -0.0763f,
               0.0679f, -0.0754f, 0.0693f});
  EXPECT_TRUE(attn_test::all_close(out.view(), book.view(), 5e-5));
}

TEST(SelfAttentionV2, StateNamesWithAndWithoutBias) {
  attn::SelfAttentionV2<float> plain(3, 2), biased(3, 2, true);
  EXPECT_EQ(attn::state_dict(plain).size(), 3u);
  const auto dict = attn::state_dict(biased);
  ASSERT_EQ(dict.size(), 6u);
  EXPECT_EQ(dict.at("W_value.weight").shape, (std::vector<attn::Index>{2, 3}));
  EXPECT_EQ(dict.at("W_key.bias").shape, (std::vector<attn::Index>{2}));
}

TEST(SelfAttentionV2, BadInputIsAnError) {
  const attn::SelfAttentionV2<double> layer(3, 2);
  attn::Tensor<double, 2> x({6, 2});
  ATTN_EXPECT_ERROR(layer.forward(x.view()), attn::ShapeError,
                    {"SelfAttentionV2", "(6, 2)", "d_in (3)"});
}

TEST(SelfAttentionV2, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"self_attention_v2_book", "self_attention_v2_bias"}) {
    attn_test::check_layer_gradients<float, 2>(name, make_v2<float>);
    attn_test::check_layer_gradients<double, 2>(name, make_v2<double>);
  }
}

TEST(SelfAttentionV2, GradientCheck) {
  attn::Generator init(2), generator(3);
  auto layer = make_v2<double>(attn_test::load_io("self_attention_v2_bias"), init);
  attn_test::check_layer_by_finite_differences(
      layer, attn_test::random_tensor<2>({4, layer.d_in()}, generator));
}

}  // namespace
