#include "attn/layers/grouped_query_attention.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "attn/layers/multi_head_attention.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

// The fixtures of generate_inference.py: GroupedQueryAttention(8, 48, 0.0, 12, G) for G = 1
// (multi-query), 2, 4, 12 (one kv head per query head), with qkv_bias, and with RoPE.
const char* const gqa_cases[] = {"gqa_g1",      "gqa_g2",   "gqa_g4",      "gqa_g12",
                                 "gqa_g4_bias", "gqa_rope", "gqa_rope_t32"};
const attn::AttentionPath gqa_paths[] = {attn::AttentionPath::reference,
                                         attn::AttentionPath::fused};

/// The case's layer: its metadata's sizes, and RoPE with the metadata's theta and
/// context_length when the case has them (gqa_rope), or with the file's own float32 tables,
/// whatever Scalar, when it says so (gqa_rope_t32: the book's tables given to a float64 layer).
template <typename Scalar>
attn::GroupedQueryAttention<Scalar> make_gqa(const attn::io::SafetensorsFile& io,
                                             attn::Generator& generator) {
  using attn_test::metadata_int;
  attn::GroupedQueryAttention<Scalar> layer(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), Scalar(0), metadata_int(io, "num_heads"),
      metadata_int(io, "num_kv_groups"), metadata_int(io, "qkv_bias") != 0, generator);
  if (io.metadata.count("rope_tables") != 0) {
    layer.set_rope(attn::RopeParams<float>{attn::io::to_tensor<float, 2>(io, "rope.cos"),
                                           attn::io::to_tensor<float, 2>(io, "rope.sin")});
  } else if (io.metadata.count("rope_theta") != 0) {
    layer.set_rope(static_cast<Scalar>(std::stod(io.metadata.at("rope_theta"))),
                   metadata_int(io, "context_length"));
  }
  return layer;
}

/// make_gqa on a given kernel path.
template <typename Scalar>
auto make_gqa_on(attn::AttentionPath path) {
  return [path](const attn::io::SafetensorsFile& io, attn::Generator& generator) {
    auto layer = make_gqa<Scalar>(io, generator);
    layer.set_attention_path(path);
    return layer;
  };
}

// Initialisation from Generator(seed) equals the fixture's state_dict (torch.manual_seed(seed)),
// the eval forward matches PyTorch's output, forward_with_weights its attn_weights (the causal
// zeros exactly 0), on both kernel paths.
TEST(GroupedQueryAttention, MatchesPyTorchFixtures) {
  for (const char* name : gqa_cases) {
    for (const auto path : gqa_paths) {
      SCOPED_TRACE(path == attn::AttentionPath::fused ? "fused" : "reference");
      attn_test::check_layer_fixture<3>(name, make_gqa_on<float>(path));
    }
  }
}

// Backward against autograd: dL/dx and every parameter's gradient, float and double.
TEST(GroupedQueryAttention, GradientsMatchPyTorchAutograd) {
  for (const char* name : gqa_cases) {
    for (const auto path : gqa_paths) {
      SCOPED_TRACE(path == attn::AttentionPath::fused ? "fused" : "reference");
      attn_test::check_layer_gradients<float, 3>(name, make_gqa_on<float>(path));
      attn_test::check_layer_gradients<double, 3>(name, make_gqa_on<double>(path));
    }
  }
}

TEST(GroupedQueryAttention, RopeCaseUsesTheMetadata) {
  const auto io = attn_test::load_io("gqa_rope");
  attn::Generator generator(1);
  const auto layer = make_gqa<float>(io, generator);
  EXPECT_TRUE(layer.has_rope());
  EXPECT_EQ(layer.head_dim(), attn_test::metadata_int(io, "head_dim"));
  EXPECT_EQ(io.metadata.at("rope_theta"), "10000");
  EXPECT_EQ(attn_test::metadata_int(io, "context_length"), 16);
}

TEST(GroupedQueryAttention, Float64LayerTakesTheBooksFloat32RopeTables) {
  // GradientsMatchPyTorchAutograd checks gqa_rope_t32 (a float64 layer given PyTorch's float32
  // tables) within the double tolerance. The case can tell the tables apart: the same layer
  // with its own float64 tables misses PyTorch's output by far more than that.
  const auto io = attn_test::load_io("gqa_rope_t32");
  attn::Generator generator(1);
  auto own_tables = make_gqa<double>(io, generator);
  own_tables.set_rope(10000.0, 16);
  attn::load_state_dict(own_tables, attn_test::prefixed<double>(io, "f64.state."));
  own_tables.eval();
  const auto x = attn_test::fixture_tensor<double, 3>(io, "f64.x");
  const auto expected = attn_test::fixture_tensor<double, 3>(io, "f64.out");
  const double scale = attn_test::frobenius(expected);
  EXPECT_FALSE(attn_test::close_normwise(own_tables.forward(x.view()), expected, scale, 1e-10));
  attn::GroupedQueryAttention<double> wrong(8, 32, 0.0, 4, 2);
  const attn::Tensor<float, 2> narrow({16, 6});
  ATTN_EXPECT_ERROR(wrong.set_rope(attn::RopeParams<float>{narrow, narrow}), attn::ShapeError,
                    {"RoPE tables cos (16, 6)", "head_dim = 8"});
}

TEST(GroupedQueryAttention, StateNamesAndShapesFollowTheNotebook) {
  const attn::GroupedQueryAttention<float> gqa(8, 48, 0.0f, 12, 4, true);
  EXPECT_EQ(gqa.num_heads(), 12);
  EXPECT_EQ(gqa.num_kv_groups(), 4);
  EXPECT_EQ(gqa.group_size(), 3);
  EXPECT_EQ(gqa.head_dim(), 4);
  EXPECT_EQ(gqa.kv_dim(), 16);
  const auto dict = attn::state_dict(gqa);
  EXPECT_EQ(dict.size(), 7u);  // three projections with biases, out_proj without; no mask
  EXPECT_EQ(dict.at("W_query.weight").shape, (std::vector<attn::Index>{48, 8}));
  EXPECT_EQ(dict.at("W_key.weight").shape, (std::vector<attn::Index>{16, 8}));
  EXPECT_EQ(dict.at("W_value.weight").shape, (std::vector<attn::Index>{16, 8}));
  EXPECT_EQ(dict.at("W_key.bias").shape, (std::vector<attn::Index>{16}));
  EXPECT_EQ(dict.at("out_proj.weight").shape, (std::vector<attn::Index>{48, 48}));
  EXPECT_EQ(dict.count("out_proj.bias"), 0u);
  EXPECT_EQ(dict.count("mask"), 0u);
  EXPECT_EQ(attn::parameter_count(gqa), 48 * 8 + 48 + 2 * (16 * 8 + 16) + 48 * 48);
}

/// A's parameters loaded into a MultiHeadAttention of the same sizes: GroupedQueryAttention's
/// out_proj has no bias, so MultiHeadAttention's is zero.
template <typename Scalar>
attn::MultiHeadAttention<Scalar> gqa_as_mha(const attn::GroupedQueryAttention<Scalar>& gqa,
                                            attn::Index context_length) {
  attn::MultiHeadAttention<Scalar> mha(gqa.d_in(), gqa.d_out(), context_length, Scalar(0),
                                       gqa.num_heads(), true);
  auto state = attn::state_dict(gqa);
  state["out_proj.bias"] = {{gqa.d_out()},
                            std::vector<Scalar>(static_cast<std::size_t>(gqa.d_out()), Scalar(0))};
  attn::load_state_dict(mha, state);
  return mha;
}

// With num_kv_groups = num_heads every query head has its own kv head: the layer is
// MultiHeadAttention (forward and every gradient), on both paths.
TEST(GroupedQueryAttention, OneGroupPerHeadIsMultiHeadAttention) {
  attn::Generator data(12);
  const auto x = attn_test::random_tensor<3>({2, 9, 5}, data);
  const auto R = attn_test::random_tensor<3>({2, 9, 12}, data);
  for (const auto path : gqa_paths) {
    attn::GroupedQueryAttention<double> gqa(5, 12, 0.0, 4, 4, true, attn::Generator(7));
    auto mha = gqa_as_mha(gqa, 9);
    gqa.set_attention_path(path);
    mha.set_attention_path(path);
    gqa.eval();
    mha.eval();
    attn::zero_grad(gqa);
    attn::zero_grad(mha);
    const attn_test::LayerScales scales = attn_test::layer_scales(attn::state_dict(mha), x, &R, 4);
    const double tolerance = scales.tolerance<double>();
    attn::GroupedQueryAttention<double>::Cache gqa_cache;
    attn::MultiHeadAttention<double>::Cache mha_cache;
    EXPECT_TRUE(attn_test::close_normwise(gqa.forward(x.view(), gqa_cache),
                                          mha.forward(x.view(), mha_cache), scales.out, tolerance,
                                          "out"));
    EXPECT_TRUE(attn_test::close_normwise(gqa.backward(gqa_cache, R.view()),
                                          mha.backward(mha_cache, R.view()), scales.grad_x,
                                          tolerance, "grad x"));
    const auto ours = attn::gradients(gqa), theirs = attn::gradients(mha);
    for (const auto& piece : scales.gradients) {
      if (piece.name == "out_proj.bias") continue;  // GroupedQueryAttention has none
      ASSERT_EQ(ours.count(piece.name), 1u) << piece.name;
      const auto& a = ours.at(piece.name).values;
      const auto& b = theirs.at(piece.name).values;
      EXPECT_TRUE(piece.vanishing
                      ? attn_test::negligible(a, piece.scale, tolerance, piece.name)
                      : attn_test::close_normwise(a, b, piece.scale, tolerance, piece.name));
    }
  }
}

// The same against PyTorch: gqa_g12's weights in a MultiHeadAttention give PyTorch's output.
TEST(GroupedQueryAttention, MultiHeadAttentionWithGqaG12WeightsMatchesPyTorch) {
  const auto io = attn_test::load_io("gqa_g12");
  auto state = attn::io::to_state_dict<float>(attn_test::read_fixture("gqa_g12.safetensors"));
  const attn::Index d_out = attn_test::metadata_int(io, "d_out");
  state["out_proj.bias"] = {{d_out}, std::vector<float>(static_cast<std::size_t>(d_out), 0.0f)};
  const auto x = attn_test::fixture_tensor<float, 3>(io, "x");
  attn::MultiHeadAttention<float> mha(attn_test::metadata_int(io, "d_in"), d_out, x.size(1), 0.0f,
                                      attn_test::metadata_int(io, "num_heads"));
  attn::load_state_dict(mha, state);
  mha.eval();
  const attn_test::LayerScales scales = attn_test::layer_scales(state, x, nullptr, mha.num_heads());
  EXPECT_TRUE(attn_test::close_normwise(mha.forward(x.view()),
                                        attn_test::fixture_tensor<float, 3>(io, "out"), scales.out,
                                        scales.tolerance<float>(), "out"));
}

// Central differences in double with RoPE, a key bias and a sliding window together (no fixture
// has all three; with RoPE the key bias's gradient is not zero: each key's bias is rotated by
// its own angle), on both kernel paths.
TEST(GroupedQueryAttention, GradientCheckWithRopeAndWindowOnBothPaths) {
  for (const auto path : gqa_paths) {
    attn::GroupedQueryAttention<double> layer(4, 8, 0.0, 4, 2, true, attn::Generator(2));
    layer.set_rope(100.0, 16);
    layer.set_window(3);
    layer.set_attention_path(path);
    layer.eval();
    attn::Generator generator(3);
    attn_test::check_layer_by_finite_differences(layer,
                                                 attn_test::random_tensor<3>({2, 6, 4}, generator));
  }
}

TEST(GroupedQueryAttention, BadArgumentsAreErrors) {
  ATTN_EXPECT_ERROR(attn::GroupedQueryAttention<float>(8, 48, 0.0f, 12, 0), std::invalid_argument,
                    {"GroupedQueryAttention", "num_kv_groups (0) must be positive"});
  ATTN_EXPECT_ERROR(attn::GroupedQueryAttention<float>(8, 48, 0.0f, 12, -2), std::invalid_argument,
                    {"GroupedQueryAttention", "num_kv_groups (-2)"});
  ATTN_EXPECT_ERROR(
      attn::GroupedQueryAttention<float>(8, 48, 0.0f, 12, 5), std::invalid_argument,
      {"GroupedQueryAttention: num_heads (12) must be divisible by num_kv_groups (5)"});
  ATTN_EXPECT_ERROR(attn::GroupedQueryAttention<float>(8, 48, 0.0f, 0, 1), std::invalid_argument,
                    {"GroupedQueryAttention", "num_heads (0)"});
  ATTN_EXPECT_ERROR(attn::GroupedQueryAttention<float>(8, 50, 0.0f, 12, 4), std::invalid_argument,
                    {"GroupedQueryAttention: d_out (50) must be divisible by num_heads (12)"});
  ATTN_EXPECT_ERROR(attn::GroupedQueryAttention<float>(8, 48, 1.0f, 12, 4), std::invalid_argument,
                    {"dropout"});
  // head_dim 12 / 4 = 3: RoPE rotates pairs of coordinates.
  attn::GroupedQueryAttention<float> odd(8, 12, 0.0f, 4, 2);
  ATTN_EXPECT_ERROR(odd.set_rope(10000.0f, 16), std::invalid_argument, {"head_dim (3)", "even"});
  EXPECT_FALSE(odd.has_rope());
  attn::GroupedQueryAttention<float> even(8, 16, 0.0f, 4, 2);
  ATTN_EXPECT_ERROR(even.set_rope(0.0f, 16), std::invalid_argument, {"theta_base (0)"});
  ATTN_EXPECT_ERROR(even.set_rope(10000.0f, 0), std::invalid_argument, {"context_length (0)"});
  ATTN_EXPECT_ERROR(even.set_window(-1), std::invalid_argument, {"window (-1) must be positive"});
  attn::Tensor<float, 3> wrong_width({2, 3, 7});
  ATTN_EXPECT_ERROR(even.forward(wrong_width.view()), attn::ShapeError, {"7", "d_in"});
  // RoPE refuses positions beyond its context_length.
  even.set_rope(10000.0f, 4);
  even.eval();
  attn::Tensor<float, 3> too_long({1, 5, 8});
  ATTN_EXPECT_ERROR(even.forward(too_long.view()), std::out_of_range, {"context_length (4)"});
}

}  // namespace
