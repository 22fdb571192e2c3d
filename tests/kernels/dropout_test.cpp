#include "attn/kernels/dropout.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "attn/tensor/tensor.hpp"
#include "support/expect_error.hpp"

namespace {

TEST(Dropout, EvalModeIsTheIdentity) {
  attn::Tensor<float, 2> values({6, 6}, 1.0f);
  attn::Generator generator(123);
  attn::dropout(values.view(), 0.5f, /*training=*/false, generator);
  for (attn::Index i = 0; i < values.numel(); ++i) EXPECT_EQ(values.data()[i], 1.0f);
}

TEST(Dropout, HalfZeroedAndTheRestDoubled) {
  attn::Tensor<float, 2> values({100, 100}, 1.0f);
  attn::Generator generator(123);
  attn::dropout(values.view(), 0.5f, /*training=*/true, generator);
  attn::Index zeros = 0;
  for (attn::Index i = 0; i < values.numel(); ++i) {
    const float value = values.data()[i];
    EXPECT_TRUE(value == 0.0f || value == 2.0f) << value;
    zeros += value == 0.0f;
  }
  // 10000 fair coin flips: 5000 +- 4 standard deviations (50 each).
  EXPECT_NEAR(static_cast<double>(zeros), 5000.0, 200.0);
}

TEST(Dropout, SameSeedSameMask) {
  attn::Tensor<double, 2> first({6, 6}, 1.0), second({6, 6}, 1.0);
  attn::Generator a(7), b(7);
  attn::dropout(first.view(), 0.3, true, a);
  attn::dropout(second.view(), 0.3, true, b);
  for (attn::Index i = 0; i < first.numel(); ++i) EXPECT_EQ(first.data()[i], second.data()[i]);
}

TEST(Dropout, ProbabilityOutsideZeroOneIsRefused) {
  attn::Tensor<float, 2> values({2, 2});
  attn::Generator generator;
  ATTN_EXPECT_ERROR(attn::dropout(values.view(), 1.0f, true, generator), std::invalid_argument,
                    {"dropout (1)", "[0, 1)"});
  ATTN_EXPECT_ERROR(attn::dropout(values.view(), -0.1f, true, generator), std::invalid_argument,
                    {"dropout (-0.1)"});
  ATTN_EXPECT_ERROR(attn::dropout(values.view(), NAN, false, generator), std::invalid_argument,
                    {"dropout (nan)"});
}

}  // namespace

namespace {

// The book's section 3.5.2 (PyTorch 1.13 prints the same):
//   torch.manual_seed(123); torch.nn.Dropout(0.5)(torch.ones(6, 6))
TEST(Dropout, ReproducesTheBooksMaskForSeed123) {
  attn::Tensor<float, 2> values({6, 6}, 1.0f);
  attn::Generator generator(123);
  attn::dropout(values.view(), 0.5f, /*training=*/true, generator);
  const attn::Tensor<float, 2> book({6, 6}, {2, 2, 0, 2, 2, 0,  //
                                             0, 0, 0, 2, 0, 2,  //
                                             2, 2, 2, 2, 0, 2,  //
                                             0, 2, 2, 0, 0, 2,  //
                                             0, 2, 0, 2, 0, 2,  //
                                             0, 2, 2, 2, 2, 0});
  for (attn::Index i = 0; i < values.numel(); ++i) EXPECT_EQ(values.data()[i], book.data()[i]) << i;
}

}  // namespace

#include "attn/io/safetensors.hpp"
#include "attn/layers/causal_attention.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "support/fixtures.hpp"
#include "support/layer_fixture.hpp"
#include "support/normwise.hpp"

namespace {

// Training-mode forward with dropout on the attention weights, against PyTorch
// (tests/fixtures/generate.py, dropout_case): Generator(456) as the layer's dropout generator
// draws the masks torch.manual_seed(456) draws, over (batch, head, query, key) in memory order.
template <typename Layer>
void check_training_forward(const std::string& prefix, Layer layer, attn::Index num_heads,
                            double dropout) {
  SCOPED_TRACE(prefix);
  const auto io = attn_test::load_io("dropout_train");
  const auto all = attn::io::to_state_dict<float>(io);
  attn::StateDict<float> state;
  for (const auto& [name, tensor] : all) {
    if (name.rfind(prefix + ".state.", 0) == 0) state[name.substr(prefix.size() + 7)] = tensor;
  }
  attn::load_state_dict(layer, state);
  layer.train();
  layer.dropout_generator() = attn::Generator(456);
  const auto x = attn_test::fixture_tensor<float, 3>(io, "x");
  // Against the layer's output scale (layer_scales), the kept weights scaled by 1 / (1 - p).
  const attn_test::LayerScales scales =
      attn_test::layer_scales(state, x, nullptr, num_heads, dropout);
  EXPECT_TRUE(attn_test::close_normwise(layer.forward(x.view()),
                                        attn_test::fixture_tensor<float, 3>(io, prefix + ".out"),
                                        scales.out, scales.tolerance<float>()));
}

TEST(Dropout, TrainingForwardMatchesPyTorchsMasks) {
  check_training_forward("mha", attn::MultiHeadAttention<float>(6, 4, 8, 0.3f, 2), 2, 0.3);
  check_training_forward("causal", attn::CausalAttention<float>(6, 4, 8, 0.5f), 1, 0.5);
}

}  // namespace
