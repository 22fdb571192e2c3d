#include "attn/kernels/scaled_dot_product_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "attn/tensor/view_ops.hpp"
#include "support/attention_bounds.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn_test::close_normwise;
using attn_test::fixture_tensor;

// ---- Against PyTorch: (B 2, H 3, T 5, S 7, D 4, Dv 6), every mask kind, float and double ----

template <typename Scalar>
void check_kernel_fixture(const std::string& name) {
  const auto file = attn_test::load_io(name);
  const auto q = fixture_tensor<Scalar, 4>(file, "q");
  const auto k = fixture_tensor<Scalar, 4>(file, "k");
  const auto v = fixture_tensor<Scalar, 4>(file, "v");
  const auto expected_out = fixture_tensor<Scalar, 4>(file, "out");
  const auto expected_weights = fixture_tensor<Scalar, 4>(file, "weights");

  attn::AttentionOptions<Scalar> options;
  attn::Tensor<bool, 2> mask;
  const std::string kind = file.metadata.at("mask");
  if (kind == "causal") {
    options.mask = attn::Mask::causal();
  } else if (kind == "matrix") {
    const auto values = fixture_tensor<Scalar, 2>(file, "mask");
    mask = attn::Tensor<bool, 2>(values.shape());
    for (attn::Index i = 0; i < values.numel(); ++i) mask.data()[i] = values.data()[i] != 0;
    options.mask = attn::Mask::matrix(mask.view());
  }
  const bool custom_scale = name.find("scale") != std::string::npos;
  if (custom_scale) options.scale = Scalar(0.3);
  const double scale = custom_scale ? 0.3 : 1 / std::sqrt(double(q.size(3)));

  attn::Tensor<Scalar, 4> out(expected_out.shape(), Scalar(-7));
  attn::Tensor<Scalar, 4> weights(expected_weights.shape());
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                     weights.view());
  // PyTorch computed in double and rounded to Scalar. Normwise against the problem scales:
  // ||out||_F <= vmax sqrt(rows) (attention_bounds.hpp), and every softmax row has |P_i| <= 1, so
  // ||P||_F <= sqrt(rows); tolerance 4 eps (max |logit| + sqrt(max(T, S, D, Dv))).
  const auto bounds = attn_test::attention_forward_bounds(q, k, v, scale);
  const double tolerance = attn_test::rounding_tolerance<Scalar>(bounds.logits, bounds.length);
  const double rows = static_cast<double>(weights.numel() / weights.size(3));
  EXPECT_TRUE(close_normwise(out, expected_out, bounds.out, tolerance, name + " out"));
  EXPECT_TRUE(
      close_normwise(weights, expected_weights, std::sqrt(rows), tolerance, name + " weights"));
}

TEST(ScaledDotProductAttention, MatchesPyTorchInFloat) {
  for (const char* name :
       {"sdpa_none_f32", "sdpa_causal_f32", "sdpa_matrix_f32", "sdpa_scale_f32"}) {
    check_kernel_fixture<float>(name);
  }
}

TEST(ScaledDotProductAttention, MatchesPyTorchInDouble) {
  for (const char* name :
       {"sdpa_none_f64", "sdpa_causal_f64", "sdpa_matrix_f64", "sdpa_scale_f64"}) {
    check_kernel_fixture<double>(name);
  }
}

TEST(ScaledDotProductAttention, FullyMaskedQueryGivesZerosNotNaN) {
  // sdpa_matrix masks every key of query 2; PyTorch would give NaN, attn gives zeros.
  const auto file = attn_test::load_io("sdpa_matrix_f64");
  const auto expected = fixture_tensor<double, 4>(file, "out");
  for (attn::Index d = 0; d < expected.size(3); ++d) EXPECT_EQ(expected(1, 2, 2, d), 0.0);
  check_kernel_fixture<double>("sdpa_matrix_f64");
}

// ---- Strided views: heads read in place from a (B, T, H*D) projection -----------------------

TEST(ScaledDotProductAttention, HeadsFromSplitViewsMatchContiguousHeads) {
  const auto file = attn_test::load_io("sdpa_causal_f64");
  const auto q = fixture_tensor<double, 4>(file, "q");  // (2, 3, 5, 4)
  const auto k = fixture_tensor<double, 4>(file, "k");  // (2, 3, 7, 4)
  const auto v = fixture_tensor<double, 4>(file, "v");  // (2, 3, 7, 6)
  const auto expected = fixture_tensor<double, 4>(file, "out");
  // Lay q, k, v out as the book's (B, T, H*D) projections, then split them back as views.
  auto merge = [](const attn::Tensor<double, 4>& heads) {
    attn::Tensor<double, 3> merged({heads.size(0), heads.size(2), heads.size(1) * heads.size(3)});
    const auto split = attn::split_heads(merged.view(), heads.size(1));
    for (attn::Index b = 0; b < heads.size(0); ++b)
      for (attn::Index h = 0; h < heads.size(1); ++h)
        for (attn::Index t = 0; t < heads.size(2); ++t)
          for (attn::Index d = 0; d < heads.size(3); ++d) split(b, h, t, d) = heads(b, h, t, d);
    return merged;
  };
  const auto qm = merge(q), km = merge(k), vm = merge(v);
  attn::Tensor<double, 3> context({2, 5, 18});
  attn::AttentionOptions<double> options;
  options.mask = attn::Mask::causal();
  attn::scaled_dot_product_attention(
      attn::split_heads(qm.view(), 3), attn::split_heads(km.view(), 3),
      attn::split_heads(vm.view(), 3), attn::split_heads(context.view(), 3), options);
  // Against ||out||_F's bound vmax sqrt(rows), tolerance 4 eps (max |logit| + sqrt(7)).
  const auto bounds =
      attn_test::attention_forward_bounds(q, k, v, 1 / std::sqrt(double(q.size(3))));
  EXPECT_TRUE(close_normwise(attn::split_heads(context.view(), 3), expected, bounds.out,
                             attn_test::rounding_tolerance<double>(bounds.logits, bounds.length)));
}

TEST(ScaledDotProductAttention, RankTwoAndZeroTokens) {
  attn::Tensor<float, 2> q({0, 4}), k({3, 4}), v({3, 2}), out({0, 2});
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view());
  EXPECT_EQ(out.numel(), 0);
  // One query, identical keys: uniform weights, the mean of the values.
  attn::Tensor<float, 2> q1({1, 4}, 1.0f), out1({1, 2});
  attn::Tensor<float, 2> k1({3, 4}, 0.5f);
  attn::Tensor<float, 2> v1({3, 2}, {1, 2, 3, 4, 5, 6});
  attn::scaled_dot_product_attention(q1.view(), k1.view(), v1.view(), out1.view());
  EXPECT_FLOAT_EQ(out1(0, 0), 3.0f);
  EXPECT_FLOAT_EQ(out1(0, 1), 4.0f);
}

TEST(ScaledDotProductAttention, DropoutInTrainingNeedsAGeneratorAndIsSeeded) {
  attn::Tensor<double, 2> q({4, 3}, 0.1), k({4, 3}, 0.2), v({4, 2}, 1.0), out({4, 2});
  attn::AttentionOptions<double> options;
  options.dropout = 0.5;
  options.training = true;
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options),
      std::invalid_argument, {"dropout (0.5)", "Generator"});
  attn::Generator first(5), second(5);
  attn::Tensor<double, 2> weights_a({4, 4}), weights_b({4, 4});
  options.generator = &first;
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                     weights_a.view());
  options.generator = &second;
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                     weights_b.view());
  for (attn::Index i = 0; i < 16; ++i) {
    const double w = weights_a.data()[i];
    EXPECT_TRUE(w == 0.0 || std::abs(w - 0.5) < 1e-15) << w;  // uniform 1/4, kept ones doubled
    EXPECT_EQ(w, weights_b.data()[i]);
  }
  options.training = false;  // eval: no dropout, no generator needed
  options.generator = nullptr;
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options,
                                     weights_a.view());
  EXPECT_DOUBLE_EQ(weights_a(3, 1), 0.25);
}

TEST(ScaledDotProductAttention, BadShapesNameTheArgument) {
  attn::Tensor<float, 3> q({2, 5, 4}), k({2, 7, 4}), v({2, 7, 6}), out({2, 5, 6});
  attn::Tensor<float, 3> k_bad_dim({2, 7, 3}), v_short({2, 6, 6}), out_bad({2, 5, 5});
  attn::Tensor<float, 3> k_other_batch({3, 7, 4}), weights_bad({2, 5, 6});
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k_bad_dim.view(), v.view(), out.view()),
      attn::ShapeError, {"head dim 4", "head dim 3"});
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k.view(), v_short.view(), out.view()),
      attn::ShapeError, {"k has 7 tokens", "v has 6"});
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out_bad.view()),
      attn::ShapeError, {"out has shape (2, 5, 5)", "(5, 6)"});
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k_other_batch.view(), v.view(), out.view()),
      attn::ShapeError, {"k has shape (3, 7, 4)", "(2, 5, 4)"});
  ATTN_EXPECT_ERROR(attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), {},
                                                       weights_bad.view()),
                    attn::ShapeError, {"weights has shape (2, 5, 6)", "(5, 7)"});
  const auto mask = attn::causal_mask(5, 6);
  attn::AttentionOptions<float> options;
  options.mask = attn::Mask::matrix(mask.view());
  ATTN_EXPECT_ERROR(
      attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), out.view(), options),
      attn::ShapeError, {"mask has shape (5, 6)", "(5, 7)"});
}

}  // namespace
