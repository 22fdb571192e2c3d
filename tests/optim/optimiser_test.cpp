// SGD and AdamW against torch.optim: three steps from a fixed nn.Linear(5, 3) state with fixed
// gradients, every configuration named as in tests/fixtures/generate.py (OPTIMISER_CONFIGS).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attn/layers/linear.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "attn/optim/adamw.hpp"
#include "attn/optim/sgd.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn_test::close_normwise;
using attn_test::fixture_tensor;

// torch.optim updates float32 parameters. Each step p <- p - lr u rounds relative to what it
// combines, the parameter and the update, and errors carry over to the next steps; so after step
// t the problem scale of a parameter tensor is sum_{s <= t} (||p_{s-1}|| + ||p_s - p_{s-1}||),
// from PyTorch's own parameters, with tolerance 8 eps (the update's handful of operations: the
// moment estimates, their bias corrections, the square root and the division).
constexpr double kStepTolerance = 8 * attn_test::epsilon<float>();

template <typename Optimiser>
void check_three_steps(const std::string& config, Optimiser optimiser) {
  SCOPED_TRACE(config);
  const auto io = attn_test::load_io("optimiser_steps");
  attn::Linear<float> layer(5, 3);
  std::copy_n(fixture_tensor<float, 2>(io, "state.weight").data(), 15, layer.weight().data());
  std::copy_n(fixture_tensor<float, 1>(io, "state.bias").data(), 3, layer.bias().data());
  optimiser.add(layer);
  auto previous_weight = fixture_tensor<float, 2>(io, "state.weight");
  auto previous_bias = fixture_tensor<float, 1>(io, "state.bias");
  double weight_scale = 0, bias_scale = 0;
  const auto step_scale = [](const auto& before, const auto& after) {
    std::vector<double> change = attn_test::values_of(after);
    const std::vector<double> start = attn_test::values_of(before);
    for (std::size_t i = 0; i < change.size(); ++i) change[i] -= start[i];
    return attn_test::frobenius(before) + attn_test::frobenius(change);
  };
  for (int step = 1; step <= 3; ++step) {
    const std::string n = std::to_string(step);
    optimiser.zero_grad();
    // Copy into the gradients in place: the optimiser holds pointers to their storage.
    std::copy_n(fixture_tensor<float, 2>(io, "grad" + n + ".weight").data(), 15,
                layer.weight_grad().data());
    std::copy_n(fixture_tensor<float, 1>(io, "grad" + n + ".bias").data(), 3,
                layer.bias_grad().data());
    optimiser.step();
    const auto weight = fixture_tensor<float, 2>(io, config + ".step" + n + ".weight");
    const auto bias = fixture_tensor<float, 1>(io, config + ".step" + n + ".bias");
    weight_scale += step_scale(previous_weight, weight);
    bias_scale += step_scale(previous_bias, bias);
    EXPECT_TRUE(close_normwise(layer.weight(), weight, weight_scale, kStepTolerance,
                               "weight after step " + n));
    EXPECT_TRUE(
        close_normwise(layer.bias(), bias, bias_scale, kStepTolerance, "bias after step " + n));
    previous_weight = weight;
    previous_bias = bias;
  }
}

TEST(SGD, MatchesTorchOptimSGD) {
  check_three_steps("sgd", attn::SGD<float>({0.1f}));
  check_three_steps("sgd_momentum", attn::SGD<float>({0.1f, 0.9f, 0.1f, 0.01f}));
  check_three_steps("sgd_nesterov", attn::SGD<float>({0.05f, 0.8f, 0.f, 0.02f, true}));
}

TEST(AdamW, MatchesTorchOptimAdamW) {
  check_three_steps("adamw", attn::AdamW<float>());
  attn::AdamW<float>::Options custom;
  custom.lr = 0.01f;
  custom.beta1 = 0.8f;
  custom.beta2 = 0.99f;
  custom.eps = 1e-6f;
  custom.weight_decay = 0.1f;
  check_three_steps("adamw_custom", attn::AdamW<float>(custom));
}

TEST(Optimiser, DefaultsAreTorchs) {
  const attn::AdamW<float>::Options adamw;
  EXPECT_EQ(adamw.lr, 1e-3f);
  EXPECT_EQ(adamw.beta1, 0.9f);
  EXPECT_EQ(adamw.beta2, 0.999f);
  EXPECT_EQ(adamw.eps, 1e-8f);
  EXPECT_EQ(adamw.weight_decay, 1e-2f);
  const attn::SGD<float>::Options sgd{0.5f};
  EXPECT_EQ(sgd.momentum, 0.f);
  EXPECT_EQ(sgd.dampening, 0.f);
  EXPECT_EQ(sgd.weight_decay, 0.f);
  EXPECT_FALSE(sgd.nesterov);
}

TEST(Optimiser, WalksParametersByNameAndSkipsBuffers) {
  attn::MultiHeadAttention<float> attention(4, 4, 6, 0.f, 2, true);
  attn::Linear<float> head(4, 3);
  attn::SGD<float> optimiser({0.1f});
  optimiser.add(attention, "att.");
  optimiser.add(head, "head.");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < optimiser.parameters().size(); ++i) {
    names.push_back(optimiser.parameters()[i].name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{
                       "att.W_query.weight", "att.W_query.bias", "att.W_key.weight",
                       "att.W_key.bias", "att.W_value.weight", "att.W_value.bias",
                       "att.out_proj.weight", "att.out_proj.bias", "head.weight", "head.bias"}));
  ATTN_EXPECT_ERROR(optimiser.add(head, "head."), std::invalid_argument,
                    {"head.weight", "registered twice"});
}

TEST(Optimiser, ZeroGradClearsEveryGradient) {
  attn::Linear<float> layer(2, 2);
  attn::AdamW<float> optimiser;
  optimiser.add(layer);
  as_matrix(layer.weight_grad().view()).setOnes();
  as_vector(layer.bias_grad().view()).setOnes();
  optimiser.zero_grad();
  EXPECT_EQ(as_matrix(layer.weight_grad().view()).cwiseAbs().maxCoeff(), 0.f);
  EXPECT_EQ(as_vector(layer.bias_grad().view()).cwiseAbs().maxCoeff(), 0.f);
}

TEST(Optimiser, RejectsBadHyperParameters) {
  ATTN_EXPECT_ERROR(attn::SGD<float>({-0.1f}), std::invalid_argument, {"SGD", "lr", "-0.1"});
  ATTN_EXPECT_ERROR(attn::SGD<float>({0.1f, NAN}), std::invalid_argument, {"momentum", "nan"});
  ATTN_EXPECT_ERROR(attn::SGD<float>({0.1f, 0.f, 0.f, 0.f, true}), std::invalid_argument,
                    {"nesterov", "momentum"});
  attn::AdamW<float>::Options options;
  options.beta2 = 1.f;
  ATTN_EXPECT_ERROR(attn::AdamW<float>(options), std::invalid_argument, {"beta", "1", "[0, 1)"});
  options = {};
  options.eps = INFINITY;
  ATTN_EXPECT_ERROR(attn::AdamW<float>(options), std::invalid_argument, {"eps", "inf"});
}

}  // namespace
