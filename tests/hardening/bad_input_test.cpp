// The bad-input catalogue: every way a caller can get the arguments wrong, each rejected with an
// exception derived from std::invalid_argument (ShapeError, SafetensorsError) or
// std::out_of_range (IndexError), whose message names the argument and the values. Rank
// mismatches between a layer and its input are compile errors (failtests/layer_input_rank.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "attn/attn.hpp"
#include "attn/io/safetensors.hpp"
#include "support/expect_error.hpp"

namespace {

using attn::Index;
using attn::Tensor;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(BadInput, InputFeaturesDifferFromDIn) {
  const Tensor<float, 2> x2({4, 5});
  const Tensor<float, 3> x3({2, 4, 5});
  const char* fragments[] = {"(4, 5)", "d_in"};
  ATTN_EXPECT_ERROR(attn::SelfAttentionV1<float>(3, 2).forward(x2.view()), std::invalid_argument,
                    {"SelfAttentionV1", fragments[0]});
  ATTN_EXPECT_ERROR(attn::SelfAttentionV2<float>(3, 2).forward(x2.view()), std::invalid_argument,
                    {"SelfAttentionV2", fragments[0]});
  ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 2, 6, 0.f).forward(x3.view()),
                    std::invalid_argument, {"CausalAttention", "(2, 4, 5)", "3"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionWrapper<float>(3, 2, 6, 0.f, 2).forward(x3.view()),
                    std::invalid_argument, {"(2, 4, 5)", "3"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(3, 2, 6, 0.f, 2).forward(x3.view()),
                    std::invalid_argument, {"MultiHeadAttention", "(2, 4, 5)", "3"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionCombinedQKV<float>(3, 2, 6, 0.f, 2).forward(x3.view()),
                    std::invalid_argument, {"MultiHeadAttentionCombinedQKV", "(2, 4, 5)", "3"});
  ATTN_EXPECT_ERROR(attn::Linear<float>(3, 2).forward(x3.view()), std::invalid_argument,
                    {"(2, 4, 5)", "in_features", "3"});
}

TEST(BadInput, RankMismatchAtRunTime) {
  // A state_dict entry of the wrong rank, and a reshape whose element counts differ.
  attn::SelfAttentionV2<float> layer(3, 2);
  auto dict = attn::state_dict(layer);
  dict.at("W_query.weight").shape = {6};
  ATTN_EXPECT_ERROR(attn::load_state_dict(layer, dict), std::invalid_argument,
                    {"W_query.weight", "(6)", "(2, 3)"});
  Tensor<float, 2> x({4, 6});
  ATTN_EXPECT_ERROR(attn::reshape<3>(x.view(), {2, 2, 5}), std::invalid_argument,
                    {"(4, 6)", "(2, 2, 5)"});
}

TEST(BadInput, MoreTokensThanContextLength) {
  const Tensor<float, 3> x({1, 7, 3});
  ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 2, 6, 0.f).forward(x.view()),
                    std::invalid_argument, {"7 tokens", "context_length is 6"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionWrapper<float>(3, 2, 6, 0.f, 2).forward(x.view()),
                    std::invalid_argument, {"7 tokens", "context_length is 6"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(3, 2, 6, 0.f, 2).forward(x.view()),
                    std::invalid_argument, {"7 tokens", "context_length is 6"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionCombinedQKV<float>(3, 2, 6, 0.f, 2).forward(x.view()),
                    std::invalid_argument, {"7 tokens", "context_length is 6"});
}

TEST(BadInput, DOutNotDivisibleByNumHeads) {
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(3, 10, 6, 0.f, 4), std::invalid_argument,
                    {"d_out (10)", "num_heads (4)"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionCombinedQKV<float>(3, 10, 6, 0.f, 4),
                    std::invalid_argument, {"d_out (10)", "num_heads (4)"});
}

TEST(BadInput, ZeroHeadsOrZeroSizes) {
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(3, 4, 6, 0.f, 0), std::invalid_argument,
                    {"num_heads (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionWrapper<float>(3, 4, 6, 0.f, 0), std::invalid_argument,
                    {"num_heads (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttentionCombinedQKV<float>(3, 4, 6, 0.f, 0),
                    std::invalid_argument, {"num_heads (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(3, 0, 6, 0.f, 1), std::invalid_argument,
                    {"d_out (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 0, 6, 0.f), std::invalid_argument,
                    {"d_out (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::SelfAttentionV1<float>(3, 0), std::invalid_argument,
                    {"d_out (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::SelfAttentionV2<float>(0, 2), std::invalid_argument,
                    {"d_in (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 2, 0, 0.f), std::invalid_argument,
                    {"context_length (0)", "positive"});
}

TEST(BadInput, DropoutOutsideZeroToOne) {
  for (float p : {-0.1f, 1.f, 1.5f, kNaN, kInf, -kInf}) {
    const std::string value = attn::detail::concat("(", p, ")");
    ATTN_EXPECT_ERROR(attn::CausalAttention<float>(3, 2, 6, p), std::invalid_argument,
                      {"dropout", value.c_str(), "[0, 1)"});
    ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(3, 2, 6, p, 2), std::invalid_argument,
                      {"dropout", value.c_str(), "[0, 1)"});
    Tensor<float, 2> weights({2, 2}, 0.5f);
    attn::Generator generator(1);
    ATTN_EXPECT_ERROR(attn::dropout(weights.view(), p, true, generator), std::invalid_argument,
                      {"dropout", value.c_str()});
    attn::AttentionOptions<float> options;
    options.dropout = p;
    const Tensor<float, 2> q({2, 2});
    Tensor<float, 2> out({2, 2});
    ATTN_EXPECT_ERROR(
        attn::scaled_dot_product_attention(q.view(), q.view(), q.view(), out.view(), options),
        std::invalid_argument, {"dropout", value.c_str()});
  }
}

TEST(BadInput, MaskShapeDiffersFromTokens) {
  const Tensor<float, 3> q({2, 4, 3}), k({2, 5, 3});
  Tensor<float, 3> out({2, 4, 3});
  const Tensor<bool, 2> wrong({4, 4});
  attn::AttentionOptions<float> options;
  options.mask = attn::Mask::matrix(wrong.view());
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k.view(), k.view(), out.view(), options),
      std::invalid_argument, {"mask", "(4, 4)", "(4, 5)"});
}

TEST(BadInput, QueryAndKeyHeadDimsDiffer) {
  const Tensor<float, 3> q({2, 4, 3}), k({2, 5, 2}), v({2, 5, 3});
  Tensor<float, 3> out({2, 4, 3});
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view()),
                    std::invalid_argument, {"q has head dim 3", "k has head dim 2"});
}

TEST(BadInput, KeyAndValueLengthsDiffer) {
  const Tensor<float, 3> q({2, 4, 3}), k({2, 5, 3}), v({2, 6, 3});
  Tensor<float, 3> out({2, 4, 3});
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view()),
                    std::invalid_argument, {"k has 5 tokens", "v has 6"});
}

TEST(BadInput, LeadingDimensionsDiffer) {
  const Tensor<float, 3> q({2, 4, 3}), k({3, 5, 3});
  Tensor<float, 3> out({2, 4, 3});
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention(q.view(), k.view(), k.view(), out.view()),
                    std::invalid_argument, {"k has shape (3, 5, 3)", "q has shape (2, 4, 3)"});
}

// Zero tokens is not an error: every layer returns an empty (B, 0, d_out) result.
TEST(BadInput, ZeroTokensGiveEmptyOutputs) {
  const Tensor<float, 3> x({2, 0, 3});
  EXPECT_EQ(attn::CausalAttention<float>(3, 2, 6, 0.f).forward(x.view()).shape(),
            (attn::Shape<3>{2, 0, 2}));
  EXPECT_EQ(attn::MultiHeadAttentionWrapper<float>(3, 2, 6, 0.f, 2).forward(x.view()).shape(),
            (attn::Shape<3>{2, 0, 4}));
  EXPECT_EQ(attn::MultiHeadAttention<float>(3, 4, 6, 0.f, 2).forward(x.view()).shape(),
            (attn::Shape<3>{2, 0, 4}));
  EXPECT_EQ(attn::MultiHeadAttentionCombinedQKV<float>(3, 4, 6, 0.f, 2).forward(x.view()).shape(),
            (attn::Shape<3>{2, 0, 4}));
  const Tensor<float, 2> x2({0, 3});
  EXPECT_EQ(attn::SelfAttentionV1<float>(3, 2).forward(x2.view()).shape(), (attn::Shape<2>{0, 2}));
  EXPECT_EQ(attn::SelfAttentionV2<float>(3, 2).forward(x2.view()).shape(), (attn::Shape<2>{0, 2}));
  EXPECT_EQ(attn::simplified_self_attention(x2.view()).shape(), (attn::Shape<2>{0, 3}));
  // ...and a backward over zero tokens gives empty gradients.
  attn::MultiHeadAttention<float> mha(3, 4, 6, 0.f, 2);
  attn::MultiHeadAttention<float>::Cache cache;
  const auto out = mha.forward(x.view(), cache);
  EXPECT_EQ(mha.backward(cache, out.view()).shape(), x.shape());
}

TEST(BadInput, NonContiguousViewWhereContiguousIsNeeded) {
  Tensor<float, 2> x({4, 6});
  const auto transposed = attn::transpose(x.view(), 0, 1);
  ATTN_EXPECT_ERROR(attn::reshape<1>(transposed, {24}), std::invalid_argument,
                    {"contiguous", "(6, 4)"});
  ATTN_EXPECT_ERROR(attn::as_matrix(transposed), std::invalid_argument, {"(6, 4)", "strides"});
}

// A transposed view, as PyTorch's x.transpose(1, 2) gives: each layer reads it by its values
// (copying it to rows first), so the result equals the result for a contiguous copy, bit for bit.
TEST(BadInput, LayersReadTransposedInputsByTheirValues) {
  attn::Generator generator(4);
  Tensor<float, 3> stored({2, 5, 6});  // (B, d_in, T) in memory
  for (Index i = 0; i < stored.numel(); ++i) stored.data()[i] = generator.uniform<float>(-1, 1);
  const auto x = attn::transpose(stored.view(), 1, 2);  // (B, T, d_in), last stride T
  ASSERT_NE(x.strides()[2], 1);
  const Tensor<float, 3> copy(x);
  const auto expect_same = [](const Tensor<float, 3>& a, const Tensor<float, 3>& b,
                              const char* who) {
    ASSERT_EQ(a.shape(), b.shape()) << who;
    for (Index i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]) << who << " " << i;
  };
  attn::MultiHeadAttention<float> mha(5, 4, 8, 0.f, 2, true);
  mha.eval();
  expect_same(mha.forward(x), mha.forward(copy.view()), "MultiHeadAttention");
  attn::MultiHeadAttentionCombinedQKV<float> combined(5, 4, 8, 0.f, 2);
  combined.eval();
  expect_same(combined.forward(x), combined.forward(copy.view()), "MultiHeadAttentionCombinedQKV");
  attn::MultiHeadAttentionWrapper<float> wrapper(5, 2, 8, 0.f, 2);
  wrapper.eval();
  expect_same(wrapper.forward(x), wrapper.forward(copy.view()), "MultiHeadAttentionWrapper");
  attn::CausalAttention<float> causal(5, 3, 8, 0.f);
  causal.eval();
  expect_same(causal.forward(x), causal.forward(copy.view()), "CausalAttention");

  const auto x2 = attn::select(x, 0, 1);  // (T, d_in) with strides (1, T)
  const Tensor<float, 2> copy2(x2);
  const attn::SelfAttentionV1<float> v1(5, 3);
  const attn::SelfAttentionV2<float> v2(5, 3, true);
  const auto v1_out = v1.forward(x2), v1_copy = v1.forward(copy2.view());
  const auto v2_out = v2.forward(x2), v2_copy = v2.forward(copy2.view());
  for (Index i = 0; i < v1_out.numel(); ++i) {
    ASSERT_EQ(v1_out.data()[i], v1_copy.data()[i]);
    ASSERT_EQ(v2_out.data()[i], v2_copy.data()[i]);
  }
}

// The kernel itself copies nothing: an unmappable operand is an error naming it and the fix.
TEST(BadInput, KernelNamesTheOperandItCannotRead) {
  Tensor<float, 2> stored({8, 5}), k({5, 8}), v({5, 8}), out({5, 8});
  const auto q = attn::transpose(stored.view(), 0, 1);  // (5, 8), strides (1, 5)
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention(q, k.view(), v.view(), out.view()),
                    attn::ShapeError,
                    {"scaled_dot_product_attention: q has shape (5, 8) and strides (1, 5)",
                     "attn::Tensor(view)"});
}

TEST(BadInput, LoadStateDictMissingExtraWrongShape) {
  attn::MultiHeadAttention<float> layer(3, 4, 6, 0.f, 2);
  auto missing = attn::state_dict(layer);
  missing.erase("out_proj.bias");
  ATTN_EXPECT_ERROR(attn::load_state_dict(layer, missing), std::invalid_argument,
                    {"missing key 'out_proj.bias'", "(4)"});
  auto extra = attn::state_dict(layer);
  extra["W_query.bias"] = {{4}, {0, 0, 0, 0}};
  ATTN_EXPECT_ERROR(attn::load_state_dict(layer, extra), std::invalid_argument,
                    {"unexpected key 'W_query.bias'"});
  auto wrong = attn::state_dict(layer);
  wrong.at("W_key.weight") = {{3, 4}, std::vector<float>(12)};
  ATTN_EXPECT_ERROR(attn::load_state_dict(layer, wrong), std::invalid_argument,
                    {"'W_key.weight' has shape (3, 4)", "expects (4, 3)"});
}

TEST(BadInput, LoadSafetensorsRefusesWhatWouldChangeTheWeights) {
  // F64 weights load into float rounded to nearest, but a finite double beyond float's range
  // would become infinity: refused, naming file, tensor, element and value, with the way out.
  attn::MultiHeadAttention<double> source(3, 4, 6, 0.0, 2);
  auto dict = attn::state_dict(source);
  dict.at("W_key.weight").values[5] = 1e300;
  const std::string path = ::testing::TempDir() + "attn_beyond_float.safetensors";
  attn::io::write_safetensors(path, attn::io::from_state_dict(dict));
  attn::MultiHeadAttention<float> layer(3, 4, 6, 0.f, 2);
  ATTN_EXPECT_ERROR(attn::io::load_safetensors(layer, path), std::invalid_argument,
                    {"attn_beyond_float.safetensors", "'W_key.weight' element 5 (F64 1e+300)",
                     "beyond float's range", "MultiHeadAttention<double>"});
  attn::MultiHeadAttention<double> in_double(3, 4, 6, 0.0, 2);
  EXPECT_NO_THROW(attn::io::load_safetensors(in_double, path));
  // Weights stored as integers are refused, with the fix.
  auto file = attn::io::from_state_dict(attn::state_dict(layer));
  file.tensors.at("out_proj.bias").dtype = attn::io::Dtype::I32;
  attn::io::write_safetensors(path, file);
  ATTN_EXPECT_ERROR(
      attn::io::load_safetensors(layer, path), std::invalid_argument,
      {"attn_beyond_float.safetensors", "parameter 'out_proj.bias' has dtype I32", ".float()"});
  std::remove(path.c_str());
}

TEST(BadInput, BackwardWithACacheForwardNeverFilledSaysWhatToCall) {
  // The training Cache must come from forward(x, cache); an empty one is named as such, not as
  // a (0, 0, 0) input deep inside a Linear.
  attn::Tensor<float, 3> grad({1, 2, 4});
  attn::MultiHeadAttention<float> mha(4, 4, 8, 0.0f, 2);
  attn::MultiHeadAttention<float>::Cache mha_cache;
  ATTN_EXPECT_ERROR(mha.backward(mha_cache, grad.view()), std::invalid_argument,
                    {"MultiHeadAttention::backward", "the cache is empty", "forward(x, cache)"});
  attn::GroupedQueryAttention<float> gqa(4, 4, 0.0f, 2, 1);
  attn::GroupedQueryAttention<float>::Cache gqa_cache;
  ATTN_EXPECT_ERROR(gqa.backward(gqa_cache, grad.view()), std::invalid_argument,
                    {"GroupedQueryAttention::backward", "the cache is empty"});
  attn::TransformerBlock<float> block({4, 8, 2, 0.0, false});
  attn::TransformerBlock<float>::Cache block_cache;
  ATTN_EXPECT_ERROR(block.backward(block_cache, grad.view()), std::invalid_argument,
                    {"TransformerBlock::backward", "the cache is empty"});
  attn::FeedForward<float> ff(4);
  attn::FeedForward<float>::Cache ff_cache;
  ATTN_EXPECT_ERROR(ff.backward(ff_cache, grad.view()), std::invalid_argument,
                    {"FeedForward::backward", "the cache is empty"});
  attn::GPTModel<float> gpt({11, 8, 4, 2, 1, 0.0, false});
  attn::GPTModel<float>::Cache gpt_cache;
  attn::Tensor<float, 3> grad_logits({1, 2, 11});
  ATTN_EXPECT_ERROR(gpt.backward(gpt_cache, grad_logits.view()), std::invalid_argument,
                    {"GPTModel::backward", "the cache is empty", "forward(ids, cache)"});
}

TEST(BadInput, ErrorTypesDeriveFromTheStandardOnes) {
  static_assert(std::is_base_of_v<std::invalid_argument, attn::ShapeError>);
  static_assert(std::is_base_of_v<std::out_of_range, attn::IndexError>);
  static_assert(std::is_base_of_v<std::invalid_argument, attn::io::SafetensorsError>);
  const Tensor<float, 2> x({2, 3});
  ATTN_EXPECT_ERROR(x.at(2, 0), std::out_of_range, {"2", "(2, 3)"});
}

}  // namespace
