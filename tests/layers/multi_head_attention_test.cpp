#include "attn/layers/multi_head_attention.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "support/book_inputs.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
#include "support/layer_fixture.hpp"

namespace {

template <typename Scalar>
attn::MultiHeadAttention<Scalar> make_mha(const attn::io::SafetensorsFile& io,
                                          attn::Generator& generator) {
  using attn_test::metadata_int;
  return attn::MultiHeadAttention<Scalar>(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), metadata_int(io, "context_length"),
      Scalar(0), metadata_int(io, "num_heads"), metadata_int(io, "qkv_bias") != 0, generator);
}

TEST(MultiHeadAttention, MatchesPyTorchFixtures) {
  for (const char* name : {"mha_book", "mha_1head", "mha_12heads"}) {
    attn_test::check_layer_fixture<3>(name, make_mha<float>);
  }
}

// The bar: per-head weights of a qkv_bias layer within 1e-6 of PyTorch's, biases and all
// (check_layer_fixture compares them normwise for every case as well).
TEST(MultiHeadAttention, PerHeadWeightsWithQkvBiasMatchPyTorchTo1e6) {
  const auto io = attn_test::load_io("mha_12heads");
  ASSERT_EQ(attn_test::metadata_int(io, "qkv_bias"), 1);
  attn::Generator generator(1);
  auto mha = make_mha<float>(io, generator);
  attn::load_state_dict(
      mha, attn::io::to_state_dict<float>(attn_test::read_fixture("mha_12heads.safetensors")));
  mha.eval();
  const auto x = attn_test::fixture_tensor<float, 3>(io, "x");
  const auto expected = attn_test::fixture_tensor<float, 4>(io, "weights");
  const auto [context, weights] = mha.forward_with_weights(x.view());
  ASSERT_EQ(weights.shape(), expected.shape());  // (B, H, T, T) = (2, 12, 11, 11)
  double max_error = 0;
  for (attn::Index i = 0; i < weights.numel(); ++i) {
    max_error = std::max(max_error, std::abs(double(weights.data()[i]) - expected.data()[i]));
  }
  EXPECT_LE(max_error, 1e-6);
  EXPECT_EQ(context.shape(), (attn::Shape<3>{2, 11, 48}));
}

TEST(MultiHeadAttention, BookBatchAfterManualSeed123) {
  const attn::MultiHeadAttention<float> mha(3, 2, 6, 0.0f, 2, false, attn::Generator(123));
  const auto out = mha.forward(attn_test::book_batch().view());
  const attn::Tensor<float, 2> book({6, 2}, {0.3190f, 0.4858f, 0.2943f, 0.3897f, 0.2856f, 0.3593f,
                                             0.2693f, 0.3873f, 0.2639f, 0.3928f, 0.2575f, 0.4028f});
  for (attn::Index b = 0; b < 2; ++b) {
    EXPECT_TRUE(attn_test::all_close(attn::select(out.view(), 0, b), book.view(), 5e-5));
  }
}

TEST(MultiHeadAttention, Exercise33Gpt2SizedParameterCount) {
  const attn::MultiHeadAttention<float> mha(768, 768, 1024, 0.0f, 12);
  EXPECT_EQ(mha.head_dim(), 64);
  EXPECT_EQ(attn::parameter_count(mha), 2'360'064);
}

TEST(MultiHeadAttention, ConstStateOfBfloat16WeightsIsTheRoundedWeights) {
  // A const visit of bfloat16 weights widens them for that visit only; the split W_query /
  // W_key / W_value entries are cut from the stacked projection while the widening lives (they
  // once pointed into a freed copy). Reference: each float weight rounded to nearest even in
  // its top 16 bits (PyTorch's .to(torch.bfloat16)), written out here; biases stay float.
  attn::MultiHeadAttention<float> mha(16, 32, 8, 0.0f, 4, true, attn::Generator(3));
  auto expected = attn::state_dict(mha);
  for (auto& [name, tensor] : expected) {
    if (name.find(".weight") == std::string::npos) continue;
    for (float& value : tensor.values) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, &value, 4);
      bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
      std::memcpy(&value, &bits, 4);
    }
  }
  mha.set_weight_format(attn::WeightFormat::bfloat16);
  const auto& rounded = mha;
  const auto state = attn::state_dict(rounded);
  for (const auto& [name, tensor] : expected) {
    if (tensor.values.empty() || name == "mask") continue;
    EXPECT_EQ(state.at(name).values, tensor.values) << name;
  }
}

TEST(MultiHeadAttention, BadArgumentsAreErrors) {
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(768, 770, 1024, 0.0f, 12),
                    std::invalid_argument,
                    {"MultiHeadAttention: d_out (770) must be divisible by num_heads (12)"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(768, 768, 1024, 0.0f, 0), std::invalid_argument,
                    {"num_heads (0)"});
  ATTN_EXPECT_ERROR(attn::MultiHeadAttention<float>(768, 0, 1024, 0.0f, 12), std::invalid_argument,
                    {"d_out (0)"});
  const attn::MultiHeadAttention<float> mha(3, 2, 6, 0.0f, 2);
  attn::Tensor<float, 3> too_long({2, 8, 3});
  ATTN_EXPECT_ERROR(mha.forward(too_long.view()), attn::ShapeError,
                    {"8 tokens", "context_length is 6"});
}

TEST(MultiHeadAttention, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"mha_book", "mha_1head", "mha_12heads"}) {
    attn_test::check_layer_gradients<float, 3>(name, make_mha<float>);
    attn_test::check_layer_gradients<double, 3>(name, make_mha<double>);
  }
}

TEST(MultiHeadAttention, GradientCheckOnBothKernelPaths) {
  for (auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
    attn::MultiHeadAttention<double> layer(4, 6, 8, 0.0, 3, true, attn::Generator(2));
    layer.set_attention_path(path);
    layer.eval();
    attn::Generator generator(3);
    attn_test::check_layer_by_finite_differences(layer,
                                                 attn_test::random_tensor<3>({2, 5, 4}, generator));
  }
}

// Training with dropout on the fused path: the layer draws one positional mask per forward from
// its generator; with the generator put back before each forward the mask is fixed, and every
// gradient must match central differences of that forward.
TEST(MultiHeadAttention, FusedDropoutGradientsMatchCentralDifferences) {
  attn::MultiHeadAttention<double> layer(5, 6, 9, 0.3, 2, true, attn::Generator(3));
  layer.set_attention_path(attn::AttentionPath::fused);
  layer.train();
  attn::Generator data(8);
  auto x = attn_test::random_tensor<3>({2, 7, 5}, data);
  const attn::Generator start = layer.dropout_generator();
  const auto forward = [&] {
    layer.dropout_generator() = start;
    return layer.forward(x.view());
  };
  const auto out = forward();
  layer.eval();
  const auto undropped = layer.forward(x.view());
  layer.train();
  double difference = 0;
  for (attn::Index i = 0; i < out.numel(); ++i) {
    difference = std::max(difference, std::abs(out.data()[i] - undropped.data()[i]));
  }
  EXPECT_GT(difference, 0.01) << "dropout must change the training output";

  const auto R = attn_test::random_tensor<3>(out.shape(), data);
  const double loss_scale = attn_test::product_loss_scale(out, R);
  const auto loss = [&] {
    const auto y = forward();
    double sum = 0;
    for (attn::Index i = 0; i < y.numel(); ++i) sum += y.data()[i] * R.data()[i];
    return sum;
  };
  attn::zero_grad(layer);
  attn::MultiHeadAttention<double>::Cache cache;
  layer.dropout_generator() = start;
  layer.forward(x.view(), cache);
  const auto grad_x = layer.backward(cache, R.view());
  EXPECT_TRUE(attn_test::gradients_agree(
      grad_x.data(), attn_test::numeric_gradient(x.data(), x.numel(), loss), loss_scale, "x"));
  const auto analytic = attn::gradients(layer);
  layer.visit_state([&](const attn::StateEntry<double>& entry) {
    if (entry.kind != attn::StateEntry<double>::Kind::parameter) return;
    EXPECT_TRUE(attn_test::gradients_agree(
        analytic.at(entry.name).values.data(),
        attn_test::numeric_gradient(entry.data, entry.numel(), loss), loss_scale, entry.name));
  });
}

// ---- Sliding-window attention (the book's ch04/06_swa) ------------------------------------------
// generate_inference.py's swa_w1, swa_w3, swa_w9: one MultiHeadAttention(8, 12, 12, 0.0, 3,
// qkv_bias) and one x (2, 9, 8) with the window of the metadata; W = 9 = T is plain causal
// attention. With W = 1 every weight is exactly 1, so the gradients of W_query and W_key are zero
// in exact arithmetic: check_layer_gradients takes them as vanishing pieces (window_of).

const char* const mha_window_cases[] = {"swa_w1", "swa_w3", "swa_w9"};

/// make_mha with the case's window, on a given kernel path.
template <typename Scalar>
auto make_mha_window(attn::AttentionPath path) {
  return [path](const attn::io::SafetensorsFile& io, attn::Generator& generator) {
    auto layer = make_mha<Scalar>(io, generator);
    layer.set_window(attn_test::window_of(io));
    layer.set_attention_path(path);
    return layer;
  };
}

TEST(MultiHeadAttentionWindow, MatchesPyTorchFixturesOnBothPaths) {
  for (const char* name : mha_window_cases) {
    for (const auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
      SCOPED_TRACE(path == attn::AttentionPath::fused ? "fused" : "reference");
      attn_test::check_layer_fixture<3>(name, make_mha_window<float>(path));
    }
  }
}

TEST(MultiHeadAttentionWindow, GradientsMatchPyTorchAutogradOnBothPaths) {
  for (const char* name : mha_window_cases) {
    for (const auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
      SCOPED_TRACE(path == attn::AttentionPath::fused ? "fused" : "reference");
      attn_test::check_layer_gradients<float, 3>(name, make_mha_window<float>(path));
      attn_test::check_layer_gradients<double, 3>(name, make_mha_window<double>(path));
    }
  }
}

// The band itself: PyTorch's weights are zero exactly outside 0 <= i - j < W (check_weights
// holds attn's zeros to PyTorch's), and with W = 1 every weight on the diagonal is exactly 1.
TEST(MultiHeadAttentionWindow, WeightsAreTheBand) {
  for (const char* name : mha_window_cases) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    const attn::Index W = attn_test::window_of(io);
    attn::Generator generator(1);
    auto mha = make_mha<float>(io, generator);
    attn::load_state_dict(mha, attn::io::to_state_dict<float>(
                                   attn_test::read_fixture(std::string(name) + ".safetensors")));
    mha.set_window(W);
    EXPECT_EQ(mha.window(), W);
    mha.eval();
    const auto x = attn_test::fixture_tensor<float, 3>(io, "x");
    const auto expected = attn_test::fixture_tensor<float, 4>(io, "weights");
    const auto weights = mha.forward_with_weights(x.view()).weights;
    ASSERT_EQ(weights.shape(), expected.shape());
    attn::Index outside = 0, pytorch_outside = 0, diagonal_not_one = 0;
    for (attn::Index b = 0; b < weights.size(0); ++b) {
      for (attn::Index h = 0; h < weights.size(1); ++h) {
        for (attn::Index i = 0; i < weights.size(2); ++i) {
          for (attn::Index j = 0; j < weights.size(3); ++j) {
            const bool in_band = i - j >= 0 && i - j < W;
            if (!in_band) {
              outside += weights(b, h, i, j) != 0.0f;
              pytorch_outside += expected(b, h, i, j) != 0.0f;
            }
            if (W == 1 && i == j) diagonal_not_one += weights(b, h, i, j) != 1.0f;
          }
        }
      }
    }
    EXPECT_EQ(outside, 0);
    EXPECT_EQ(pytorch_outside, 0);
    EXPECT_EQ(diagonal_not_one, 0);
  }
}

// A window at least T wide is plain causal attention: swa_w9 (W = T = 9) gives the output of the
// same layer without a window, on both paths.
TEST(MultiHeadAttentionWindow, WindowOfTheSequenceIsCausal) {
  const auto io = attn_test::load_io("swa_w9");
  const auto state = attn::io::to_state_dict<float>(attn_test::read_fixture("swa_w9.safetensors"));
  const auto x = attn_test::fixture_tensor<float, 3>(io, "x");
  ASSERT_EQ(attn_test::window_of(io), x.size(1));
  const attn_test::LayerScales scales =
      attn_test::layer_scales(state, x, nullptr, attn_test::num_heads_of(io));
  for (const auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
    attn::Generator generator(1);
    auto causal = make_mha<float>(io, generator);
    attn::load_state_dict(causal, state);
    causal.eval();
    causal.set_attention_path(path);
    auto windowed = causal;
    windowed.set_window(attn_test::window_of(io));
    EXPECT_TRUE(attn_test::close_normwise(windowed.forward(x.view()), causal.forward(x.view()),
                                          scales.out, scales.tolerance<float>(), "out"));
  }
}

TEST(MultiHeadAttentionWindow, GradientCheckOnBothKernelPaths) {
  for (auto path : {attn::AttentionPath::reference, attn::AttentionPath::fused}) {
    for (const attn::Index window : {1, 2, 4}) {
      attn::MultiHeadAttention<double> layer(4, 6, 8, 0.0, 3, true, attn::Generator(2));
      layer.set_window(window);
      layer.set_attention_path(path);
      layer.eval();
      attn::Generator generator(3);
      attn_test::check_layer_by_finite_differences(
          layer, attn_test::random_tensor<3>({2, 7, 4}, generator));
    }
  }
}

}  // namespace
