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
  typename attn::MultiHeadAttentionWrapper<Scalar>::Options options;
  options.qkv_bias = metadata_int(io, "qkv_bias") != 0;
  options.out_proj = io.metadata.count("out_proj") != 0 && metadata_int(io, "out_proj") != 0;
  return attn::MultiHeadAttentionWrapper<Scalar>(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), metadata_int(io, "context_length"),
      Scalar(0), metadata_int(io, "num_heads"), options, generator);
}

// The notebook's wrapper (multihead-attention.ipynb): heads, then out_proj.
constexpr const char* wrapper_out_proj_cases[] = {"mha_wrapper_out_proj",
                                                  "mha_wrapper_out_proj_bias"};

template <typename Scalar>
attn::MultiHeadAttentionWrapper<Scalar> make_notebook_wrapper(attn::Index d_in, attn::Index d_out,
                                                              attn::Index context_length,
                                                              attn::Index num_heads,
                                                              attn::GeneratorRef generator) {
  typename attn::MultiHeadAttentionWrapper<Scalar>::Options options;
  options.out_proj = true;
  return attn::MultiHeadAttentionWrapper<Scalar>(d_in, d_out, context_length, Scalar(0), num_heads,
                                                 options, generator);
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

// ---- The notebook's wrapper: out_proj after the heads -------------------------------------------

// Built from Generator(seed): heads first, then out_proj, equal to PyTorch's init after
// torch.manual_seed(seed); loaded from the fixture, forward and forward_with_weights match
// PyTorch's output (normwise, layer_fixture.hpp's scales; the weights are the heads' own).
TEST(MultiHeadAttentionWrapper, OutProjMatchesPyTorchFixtures) {
  for (const char* name : wrapper_out_proj_cases) {
    attn_test::check_layer_fixture<3>(name, make_wrapper<float>);
  }
}

// Backward against autograd's gradients of sum(out * R): dL/dx, every head's projections and
// out_proj.weight, out_proj.bias, in float and double.
TEST(MultiHeadAttentionWrapper, OutProjGradientsMatchPyTorchAutograd) {
  for (const char* name : wrapper_out_proj_cases) {
    attn_test::check_layer_gradients<float, 3>(name, make_wrapper<float>);
    attn_test::check_layer_gradients<double, 3>(name, make_wrapper<double>);
  }
}

TEST(MultiHeadAttentionWrapper, OutProjStateNamesFollowTheHeads) {
  auto mha = make_notebook_wrapper<float>(3, 2, 6, 2, attn::Generator(123));
  ASSERT_TRUE(mha.has_out_proj());
  const auto dict = attn::state_dict(mha);
  EXPECT_EQ(dict.size(), 10u);
  ASSERT_EQ(dict.count("out_proj.weight"), 1u);
  ASSERT_EQ(dict.count("out_proj.bias"), 1u);
  EXPECT_EQ(dict.at("out_proj.weight").shape, (std::vector<attn::Index>{4, 4}));
  EXPECT_EQ(dict.at("out_proj.bias").shape, (std::vector<attn::Index>{4}));
  EXPECT_EQ(dict.count("heads.1.W_value.weight"), 1u);
  EXPECT_EQ(mha.out_proj().in_features(), 4);
  EXPECT_EQ(mha.forward(attn_test::book_batch().view()).shape(), (attn::Shape<3>{2, 6, 4}));
}

// The main chapter's constructor is unchanged: no out_proj, and asking for it says so.
TEST(MultiHeadAttentionWrapper, PlainConstructorHasNoOutProj) {
  attn::MultiHeadAttentionWrapper<float> mha(3, 2, 6, 0.0f, 2, false, attn::Generator(123));
  EXPECT_FALSE(mha.has_out_proj());
  EXPECT_EQ(attn::state_dict(mha).count("out_proj.weight"), 0u);
  ATTN_EXPECT_ERROR(mha.out_proj(), std::invalid_argument, {"without out_proj"});
}

// Two backward passes add up: every gradient, out_proj's included, doubles (to rounding: a
// blocked product may add its second pass in another order).
TEST(MultiHeadAttentionWrapper, OutProjGradientsAccumulate) {
  auto mha = make_notebook_wrapper<double>(4, 3, 8, 2, attn::Generator(4));
  attn::Generator generator(5);
  const auto x = attn_test::random_tensor<3>({2, 5, 4}, generator);
  const auto R = attn_test::random_tensor<3>({2, 5, 6}, generator);
  attn::zero_grad(mha);
  typename decltype(mha)::Cache cache;
  mha.forward(x.view(), cache);
  mha.backward(cache, R.view());
  const auto once = attn::gradients(mha);
  mha.backward(cache, R.view());
  const auto twice = attn::gradients(mha);
  ASSERT_EQ(once.count("out_proj.bias"), 1u);
  for (const auto& [name, gradient] : once) {
    const auto& doubled = twice.at(name).values;
    double largest = 0;
    for (double value : gradient.values) largest = std::max(largest, std::abs(value));
    for (std::size_t i = 0; i < gradient.values.size(); ++i) {
      ASSERT_NEAR(doubled[i], 2 * gradient.values[i], 1e-13 * largest) << name << "[" << i << "]";
    }
  }
}

TEST(MultiHeadAttentionWrapper, OutProjGradientCheck) {
  auto layer = make_notebook_wrapper<double>(4, 3, 8, 2, attn::Generator(6));
  layer.eval();
  attn::Generator generator(7);
  attn_test::check_layer_by_finite_differences(layer,
                                               attn_test::random_tensor<3>({2, 5, 4}, generator));
}

}  // namespace
