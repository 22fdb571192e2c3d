#include "attn/layers/self_attention_v1.hpp"

#include <gtest/gtest.h>

#include "attn/layers/self_attention_v2.hpp"
#include "support/book_inputs.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

template <typename Scalar>
attn::SelfAttentionV1<Scalar> make_v1(const attn::io::SafetensorsFile& io,
                                      attn::Generator& generator) {
  return attn::SelfAttentionV1<Scalar>(attn_test::metadata_int(io, "d_in"),
                                       attn_test::metadata_int(io, "d_out"), generator);
}

TEST(SelfAttentionV1, MatchesPyTorchFixtures) {
  for (const char* name : {"self_attention_v1_book", "self_attention_v1_wide"}) {
    attn_test::check_layer_fixture<2>(name, [](const auto& io, attn::Generator& generator) {
      return attn::SelfAttentionV1<float>(attn_test::metadata_int(io, "d_in"),
                                          attn_test::metadata_int(io, "d_out"), generator);
    });
  }
}

TEST(SelfAttentionV1, BookOutputAfterManualSeed123) {
  const attn::SelfAttentionV1<float> sa_v1(3, 2, attn::Generator(123));
  const auto out = sa_v1.forward(attn_test::book_inputs().view());
  const attn::Tensor<float, 2> book({6, 2}, {0.2996f, 0.8053f, 0.3061f, 0.8210f, 0.3058f, 0.8203f,
                                             0.2948f, 0.7939f, 0.2927f, 0.7891f, 0.2990f, 0.8040f});
  EXPECT_TRUE(attn_test::all_close(out.view(), book.view(), 5e-5));
}

TEST(SelfAttentionV1, Exercise31TransposedV2WeightsGiveTheSameOutput) {
  attn::SelfAttentionV2<float> sa_v2(3, 2, false, attn::Generator(789));
  attn::SelfAttentionV1<float> sa_v1(3, 2, attn::Generator(1));
  // V1 stores (d_in, d_out); nn.Linear stores (d_out, d_in): copy the transposes.
  attn::as_matrix(sa_v1.W_query().view()) =
      attn::as_matrix(sa_v2.W_query().weight().view()).transpose();
  attn::as_matrix(sa_v1.W_key().view()) =
      attn::as_matrix(sa_v2.W_key().weight().view()).transpose();
  attn::as_matrix(sa_v1.W_value().view()) =
      attn::as_matrix(sa_v2.W_value().weight().view()).transpose();
  const auto inputs = attn_test::book_inputs();
  // Against the output scale vmax sqrt(T) of the shared weights (layer_scales).
  const attn_test::LayerScales scales =
      attn_test::layer_scales(attn::state_dict(sa_v2), inputs, nullptr);
  EXPECT_TRUE(attn_test::close_normwise(sa_v1.forward(inputs.view()), sa_v2.forward(inputs.view()),
                                        scales.out, scales.tolerance<float>()));
}

TEST(SelfAttentionV1, BadArgumentsAreErrors) {
  ATTN_EXPECT_ERROR(attn::SelfAttentionV1<float>(3, 0), std::invalid_argument, {"d_out (0)"});
  const attn::SelfAttentionV1<float> layer(3, 2);
  attn::Tensor<float, 2> x({6, 4});
  ATTN_EXPECT_ERROR(layer.forward(x.view()), attn::ShapeError, {"(6, 4)", "d_in (3)"});
}

TEST(SelfAttentionV1, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"self_attention_v1_book", "self_attention_v1_wide"}) {
    attn_test::check_layer_gradients<float, 2>(name, make_v1<float>);
    attn_test::check_layer_gradients<double, 2>(name, make_v1<double>);
  }
}

TEST(SelfAttentionV1, GradientCheck) {
  attn::Generator init(2), generator(3);
  auto layer = make_v1<double>(attn_test::load_io("self_attention_v1_wide"), init);
  attn_test::check_layer_by_finite_differences(
      layer, attn_test::random_tensor<2>({4, layer.d_in()}, generator));
}

}  // namespace
