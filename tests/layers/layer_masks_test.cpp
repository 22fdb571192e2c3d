// Masks given to attention layers (attn::LayerMask: key padding as lengths or a bool matrix, and
// an additive float mask) against PyTorch (tests/fixtures/generate_layer_masks.py): the book's
// MultiHeadAttention and the notebook's GroupedQueryAttention with PyTorch's key_padding_mask and
// float attn_mask semantics; forward, dL/dx and every parameter's gradient, float and double,
// both kernel paths, within the layer tolerances of support/layer_fixture.hpp (normwise,
// ~1e-6 in float and ~1e-15 in double here, well inside the 1e-5 / 1e-12 asked for).
#include "attn/layers/layer_mask.hpp"

#include <gtest/gtest.h>

#include <string>

#include "attn/layers/grouped_query_attention.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "attn/layers/transformer_block.hpp"
#include "support/expect_error.hpp"
#include "support/layer_fixture.hpp"

namespace {

using attn::Index;

const char* const layer_mask_cases[] = {"layer_mask_mha_pad", "layer_mask_mha_len",
                                        "layer_mask_gqa_pad", "layer_mask_gqa_len"};

/// The case's layer, on a kernel path: MultiHeadAttention when num_kv_groups = num_heads.
template <typename Scalar>
auto layer_mask_make(attn::AttentionPath path) {
  return [path](const attn::io::SafetensorsFile& io, attn::Generator& generator) {
    using attn_test::metadata_int;
    attn::GroupedQueryAttention<Scalar> layer(metadata_int(io, "d_in"), metadata_int(io, "d_out"),
                                              Scalar(0), metadata_int(io, "num_heads"),
                                              metadata_int(io, "num_kv_groups"),
                                              metadata_int(io, "qkv_bias") != 0, generator);
    layer.set_attention_path(path);
    return layer;
  };
}

template <typename Scalar>
auto layer_mask_make_mha(attn::AttentionPath path) {
  return [path](const attn::io::SafetensorsFile& io, attn::Generator& generator) {
    using attn_test::metadata_int;
    attn::MultiHeadAttention<Scalar> layer(
        metadata_int(io, "d_in"), metadata_int(io, "d_out"), metadata_int(io, "context_length"),
        Scalar(0), metadata_int(io, "num_heads"), metadata_int(io, "qkv_bias") != 0, generator);
    layer.set_attention_path(path);
    return layer;
  };
}

/// The fixture's mask operands, kept alive for the forward.
template <typename Scalar>
struct LayerMaskOperands {
  attn::Tensor<Index, 1> lengths;
  attn::Tensor<bool, 2> padding;
  attn::Tensor<Scalar, 4> additive;

  explicit LayerMaskOperands(const attn::io::SafetensorsFile& io) {
    if (io.tensors.count("lengths") != 0) {
      lengths = attn::io::to_tensor<Index, 1>(io, "lengths");
    }
    if (io.tensors.count("key_padding") != 0) {
      const auto flags = attn::io::to_tensor<Index, 2>(io, "key_padding");
      padding = attn::Tensor<bool, 2>(flags.shape());
      for (Index i = 0; i < flags.numel(); ++i) padding.data()[i] = flags.data()[i] != 0;
      additive = attn::io::to_tensor<Scalar, 4>(
          io, std::is_same_v<Scalar, double> ? "f64.additive" : "additive");
    }
  }
  attn::LayerMask<Scalar> mask() const {
    attn::LayerMask<Scalar> mask;
    if (lengths.numel() != 0) mask.key_lengths = lengths.view();
    if (padding.numel() != 0) mask.key_padding = padding.view();
    if (additive.numel() != 0) mask.additive = additive.view();
    return mask;
  }
};

/// forward(x, cache, mask) with the fixture's mask.
struct LayerMaskForward {
  template <typename Layer, typename X, typename Cache>
  auto operator()(const Layer& layer, const X& x, Cache& cache,
                  const attn::io::SafetensorsFile& io) const {
    using Scalar = typename Layer::Scalar;
    const LayerMaskOperands<Scalar> operands(io);
    // The operands go out of scope before backward: the cache keeps its own copy.
    return layer.forward(x.view(), cache, operands.mask());
  }
};

TEST(LayerMasks, ForwardAndGradientsMatchPyTorch) {
  for (const char* name : layer_mask_cases) {
    const bool mha = std::string(name).find("_mha_") != std::string::npos;
    for (const auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
      SCOPED_TRACE(path == attn::AttentionPath::fused ? "fused" : "reference");
      if (mha) {
        attn_test::check_layer_gradients<float, 3>(name, layer_mask_make_mha<float>(path),
                                                   LayerMaskForward{});
        attn_test::check_layer_gradients<double, 3>(name, layer_mask_make_mha<double>(path),
                                                    LayerMaskForward{});
      } else {
        attn_test::check_layer_gradients<float, 3>(name, layer_mask_make<float>(path),
                                                   LayerMaskForward{});
        attn_test::check_layer_gradients<double, 3>(name, layer_mask_make<double>(path),
                                                    LayerMaskForward{});
      }
    }
  }
}

/// Decoding through a KV cache with the fixture's mask, prefill `prefill` tokens then one at a
/// time (each step given the mask's columns of every key so far and, additive, its own rows),
/// against PyTorch's full masked forward (or `reference`, when given).
template <typename Layer>
void layer_mask_check_decoding(Layer& layer, const attn::io::SafetensorsFile& io, Index prefill,
                               const attn::Tensor<typename Layer::Scalar, 3>* reference = nullptr) {
  using Scalar = typename Layer::Scalar;
  const std::string prefix = std::is_same_v<Scalar, double> ? "f64." : "";
  const auto x = attn_test::fixture_tensor<Scalar, 3>(io, prefix + "x");
  const auto expected =
      reference != nullptr ? *reference : attn_test::fixture_tensor<Scalar, 3>(io, prefix + "out");
  const LayerMaskOperands<Scalar> operands(io);
  const attn::LayerMask<Scalar> full = operands.mask();
  const Index T = x.size(1);
  auto cache = layer.make_kv_cache(x.size(0), T);
  attn::Tensor<Scalar, 3> decoded(expected.shape());
  for (Index t0 = 0; t0 < T;) {
    const Index t1 = t0 == 0 ? prefill : t0 + 1;
    attn::LayerMask<Scalar> step;
    step.key_lengths = full.key_lengths;
    if (full.key_padding.data() != nullptr) {
      step.key_padding = attn::slice(full.key_padding, 1, 0, t1);
    }
    if (full.additive.data() != nullptr) {
      step.additive = attn::slice(attn::slice(full.additive, 2, t0, t1), 3, 0, t1);
    }
    const auto out = layer.forward(attn::slice(x.view(), 1, t0, t1), cache, step);
    for (Index b = 0; b < x.size(0); ++b) {
      for (Index t = t0; t < t1; ++t) {
        for (Index c = 0; c < out.size(2); ++c) decoded(b, t, c) = out(b, t - t0, c);
      }
    }
    t0 = t1;
  }
  const double tolerance = std::is_same_v<Scalar, double> ? 1e-12 : 1e-5;
  EXPECT_TRUE(attn_test::close_normwise(decoded, expected, attn_test::frobenius(expected),
                                        tolerance, "decoded"));
}

TEST(LayerMasks, KVCacheDecodingMatchesPyTorch) {
  // PyTorch's full masked forward (the fixture's out), decoded with prefills of 1 and 4.
  for (const char* name : layer_mask_cases) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    for (const Index prefill : {1, 4}) {
      attn::Generator generator(1);
      if (std::string(name).find("_mha_") != std::string::npos) {
        auto mha = layer_mask_make_mha<double>(attn::AttentionPath::automatic)(io, generator);
        attn::load_state_dict(mha, attn_test::prefixed<double>(io, "f64.state."));
        mha.eval();
        layer_mask_check_decoding(mha, io, prefill);
        auto narrow = layer_mask_make_mha<float>(attn::AttentionPath::automatic)(io, generator);
        attn::load_state_dict(narrow, attn::io::to_state_dict<float>(attn_test::read_fixture(
                                          std::string(name) + ".safetensors")));
        narrow.eval();
        layer_mask_check_decoding(narrow, io, prefill);
      } else {
        auto gqa = layer_mask_make<double>(attn::AttentionPath::automatic)(io, generator);
        attn::load_state_dict(gqa, attn_test::prefixed<double>(io, "f64.state."));
        gqa.eval();
        layer_mask_check_decoding(gqa, io, prefill);
      }
    }
  }
}

TEST(LayerMasks, WindowedCacheDecodingEqualsTheMaskedForward) {
  // A sliding window of 3 keeps a ring of 3 positions: the keys a step sees come in several
  // runs, each given its own columns of the mask. Decoding equals the layer's masked forward.
  for (const char* name : {"layer_mask_mha_pad", "layer_mask_mha_len"}) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    attn::Generator generator(1);
    auto mha = layer_mask_make_mha<double>(attn::AttentionPath::automatic)(io, generator);
    attn::load_state_dict(mha, attn_test::prefixed<double>(io, "f64.state."));
    mha.eval();
    mha.set_window(3);
    const LayerMaskOperands<double> operands(io);
    const auto full =
        mha.forward(attn_test::fixture_tensor<double, 3>(io, "f64.x").view(), operands.mask());
    for (const Index prefill : {1, 2, 4}) layer_mask_check_decoding(mha, io, prefill, &full);
  }
}

TEST(LayerMasks, EvalForwardEqualsTheTrainingForwardAndTheMaskMatters) {
  // forward(x, mask) (no cache) gives what the training forward gives; and the fixture's masks
  // change the output (the same layer without them is far from PyTorch's masked output).
  const auto io = attn_test::load_io("layer_mask_gqa_pad");
  attn::Generator generator(1);
  auto layer = layer_mask_make<double>(attn::AttentionPath::automatic)(io, generator);
  attn::load_state_dict(layer, attn_test::prefixed<double>(io, "f64.state."));
  layer.eval();
  const auto x = attn_test::fixture_tensor<double, 3>(io, "f64.x");
  const auto expected = attn_test::fixture_tensor<double, 3>(io, "f64.out");
  const LayerMaskOperands<double> operands(io);
  const double scale = attn_test::frobenius(expected);
  EXPECT_TRUE(
      attn_test::close_normwise(layer.forward(x.view(), operands.mask()), expected, scale, 1e-12));
  EXPECT_FALSE(attn_test::close_normwise(layer.forward(x.view()), expected, scale, 1e-3));
}

TEST(LayerMasks, TransformerBlockHandsTheMaskToItsAttention) {
  // x1 = x + att(norm1(x), mask), out = x1 + ff(norm2(x1)), composed from the block's own
  // layers, in eval and training forward; backward through the cache applies the same mask
  // (the gradients differ from the unmasked ones).
  attn::TransformerBlock<double> block({8, 6, 2, 0.0, true}, attn::Generator(7));
  attn::Tensor<double, 3> x({2, 6, 8});
  attn::Generator draws(8);
  draws.normal_fill(x.data(), x.numel());
  attn::Tensor<bool, 2> padding({2, 6});
  padding(0, 3) = true;
  padding(1, 1) = true;
  attn::LayerMask<double> mask;
  mask.key_padding = padding.view();
  auto x1 = block.att().forward(block.norm1().forward(x.view()).view(), mask);
  for (Index i = 0; i < x1.numel(); ++i) x1.data()[i] += x.data()[i];
  auto expected = block.ff().forward(block.norm2().forward(x1.view()).view());
  for (Index i = 0; i < expected.numel(); ++i) expected.data()[i] += x1.data()[i];
  const double scale = attn_test::frobenius(expected);
  EXPECT_TRUE(attn_test::close_normwise(block.forward(x.view(), mask), expected, scale, 1e-15));
  attn::TransformerBlock<double>::Cache cache;
  EXPECT_TRUE(
      attn_test::close_normwise(block.forward(x.view(), cache, mask), expected, scale, 1e-15));
  EXPECT_FALSE(attn_test::close_normwise(block.forward(x.view()), expected, scale, 1e-6));
  attn::Tensor<double, 3> grad({2, 6, 8});
  draws.normal_fill(grad.data(), grad.numel());
  const auto masked_dx = block.backward(cache, grad.view());
  attn::TransformerBlock<double>::Cache plain;
  block.forward(x.view(), plain);
  EXPECT_FALSE(attn_test::close_normwise(block.backward(plain, grad.view()), masked_dx,
                                         attn_test::frobenius(masked_dx), 1e-6));
}

TEST(LayerMasks, BadMasksAreNamed) {
  {
    // Decoding: the mask covers every key so far.
    attn::MultiHeadAttention<float> layer(8, 12, 6, 0.0f, 3);
    auto cache = layer.make_kv_cache(2);
    const attn::Tensor<float, 3> two({2, 2, 8});
    attn::Tensor<bool, 2> padding({2, 3});
    attn::LayerMask<float> stale;
    stale.key_padding = padding.view();
    ATTN_EXPECT_ERROR(
        layer.forward(two.view(), cache, stale), attn::ShapeError,
        {"with a KV cache, key_padding has shape (2, 3) but must be (2, 2)", "0 cached and 2 new"});
  }
  attn::MultiHeadAttention<float> mha(8, 12, 6, 0.0f, 3);
  const attn::Tensor<float, 3> x({2, 5, 8});
  attn::Tensor<Index, 1> lengths({2});
  attn::Tensor<bool, 2> padding({2, 5});
  attn::LayerMask<float> both;
  both.key_lengths = lengths.view();
  both.key_padding = padding.view();
  ATTN_EXPECT_ERROR(mha.forward(x.view(), both), std::invalid_argument,
                    {"MultiHeadAttention", "key_lengths or key_padding, not both"});
  attn::Tensor<bool, 2> wrong_keys({2, 4});
  attn::LayerMask<float> short_padding;
  short_padding.key_padding = wrong_keys.view();
  ATTN_EXPECT_ERROR(mha.forward(x.view(), short_padding), attn::ShapeError,
                    {"key padding has shape (2, 4)", "5 keys"});
  attn::Tensor<float, 4> additive({3, 1, 5, 5});
  attn::LayerMask<float> wrong_batch;
  wrong_batch.additive = additive.view();
  ATTN_EXPECT_ERROR(mha.forward(x.view(), wrong_batch), attn::ShapeError,
                    {"additive mask has shape (3, 1, 5, 5)"});
}

}  // namespace
