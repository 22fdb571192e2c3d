#include "attn/layers/causal_attention.hpp"

#include <gtest/gtest.h>

#include "support/book_inputs.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

template <typename Scalar>
attn::CausalAttention<Scalar> make_causal(const attn::io::SafetensorsFile& io,
                                          attn::Generator& generator) {
  using attn_test::metadata_int;
  return attn::CausalAttention<Scalar>(metadata_int(io, "d_in"), metadata_int(io, "d_out"),
                                       metadata_int(io, "context_length"), Scalar(0.1),
                                       metadata_int(io, "qkv_bias") != 0, generator);
}

TEST(CausalAttention, MatchesPyTorchFixtures) {
  // causal_attention_short: T 7 < context_length 10, d_in != d_out, qkv_bias, batch 3.
  for (const char* name : {"causal_attention_book", "causal_attention_short"}) {
    attn_test::check_layer_fixture<3>(name, make_causal<float>);
  }
}

TEST(CausalAttention, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"causal_attention_book", "causal_attention_short"}) {
    attn_test::check_layer_gradients<float, 3>(name, make_causal<float>);
    attn_test::check_layer_gradients<double, 3>(name, make_causal<double>);
  }
}

TEST(CausalAttention, GradientCheck) {
  attn::CausalAttention<double> layer(4, 3, 8, 0.0, true, attn::Generator(2));
  attn::Generator generator(3);
  attn_test::check_layer_by_finite_differences(layer,
                                               attn_test::random_tensor<3>({2, 5, 4}, generator));
}

TEST(CausalAttention, BookBatchAfterManualSeed123) {
  const attn::CausalAttention<float> ca(3, 2, 6, 0.0f, false, attn::Generator(123));
  const auto out = ca.forward(attn_test::book_batch().view());
  ASSERT_EQ(out.shape(), (attn::Shape<3>{2, 6, 2}));
  const attn::Tensor<float, 2> book(
      {6, 2}, {-0.4519f, 0.2216f, -0.5874f, 0.0058f, -0.6300f, -0.0632f, -0.5675f, -0.0843f,
               -0.5526f, -0.0981f, -0.5299f, -0.1081f});
  for (attn::Index b = 0; b < 2; ++b) {
    EXPECT_TRUE(attn_test::all_close(attn::select(out.view(), 0, b), book.view(), 5e-5));
  }
}

TEST(CausalAttention, TrainingDropoutChangesTheOutputEvalDoesNot) {
  attn::CausalAttention<double> ca(3, 2, 6, 0.5, false, attn::Generator(123));
  const auto x = attn_test::book_batch();
  attn::Tensor<double, 3> xd({2, 6, 3});
  for (attn::Index i = 0; i < x.numel(); ++i) xd.data()[i] = x.data()[i];
  ca.eval();
  const auto eval_a = ca.forward(xd.view());
  const auto eval_b = ca.forward(xd.view());
  EXPECT_TRUE(attn_test::all_close(eval_a.view(), eval_b.view(), 0.0));
  ca.train();
  ca.dropout_generator().manual_seed(1);
  const auto train_a = ca.forward(xd.view());
  EXPECT_FALSE(attn_test::all_close(train_a.view(), eval_a.view(), 1e-3));
  ca.dropout_generator().manual_seed(1);
  const auto train_b = ca.forward(xd.view());
  EXPECT_TRUE(attn_test::all_close(train_a.view(), train_b.view(), 0.0));  // same seed, same mask
}

TEST(CausalAttention, StateIncludesTheBooksMaskBuffer) {
  attn::CausalAttention<float> ca(3, 2, 4, 0.0f, true);
  const auto dict = attn::state_dict(ca);
  ASSERT_EQ(dict.size(), 7u);
  const auto& mask = dict.at("mask");
  EXPECT_EQ(mask.shape, (std::vector<attn::Index>{4, 4}));
  EXPECT_EQ(mask.values[1], 1.0f);  // (0, 1) is masked
  EXPECT_EQ(mask.values[4], 0.0f);  // (1, 0) is not
  EXPECT_EQ(attn::parameter_count(ca), 3 * (6 + 2));
}

TEST(CausalAttention, BadArgumentsAreErrors) {
  ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 2, 0, 0.0f), std::invalid_argument,
                    {"CausalAttention", "context_length (0)"});
  ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 2, 6, 1.0f), std::invalid_argument,
                    {"dropout (1)"});
  const attn::CausalAttention<float> ca(3, 2, 6, 0.0f);
  attn::Tensor<float, 3> too_long({1, 7, 3}), wide({1, 6, 4});
  ATTN_EXPECT_ERROR(ca.forward(too_long.view()), attn::ShapeError,
                    {"7 tokens", "context_length is 6"});
  ATTN_EXPECT_ERROR(ca.forward(wide.view()), attn::ShapeError, {"(1, 6, 4)", "d_in (3)"});
}

}  // namespace
