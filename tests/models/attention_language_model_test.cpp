// AttentionLanguageModel trained for three AdamW steps next to PyTorch (float64, from the same
// state, on the same batch): the loss before every step and every parameter after the last.
#include "attn/models/attention_language_model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attn/io/safetensors.hpp"
#include "attn/losses/cross_entropy.hpp"
#include "attn/optim/adamw.hpp"
#include "attn/state/state_dict.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn_test::fixture_tensor;
using attn_test::metadata_int;
using Model = attn::AttentionLanguageModel<double>;

Model fixture_model(const attn::io::SafetensorsFile& io) {
  Model model({metadata_int(io, "vocab_size"), metadata_int(io, "context_length"),
               metadata_int(io, "d_model"), metadata_int(io, "num_heads")});
  attn::load_state_dict(model, attn::io::to_state_dict<double>(attn_test::read_fixture(
                                   "attention_language_model.safetensors")));
  return model;
}

/// The problem scale of a mean cross-entropy: its terms logsumexp(logits_r) and logits_r[target]
/// are together at most 2 max |logit| + log(vocab).
double cross_entropy_scale(const attn::Tensor<double, 3>& logits) {
  double largest = 0;
  for (Index i = 0; i < logits.numel(); ++i) {
    largest = std::max(largest, std::abs(logits.data()[i]));
  }
  return 2 * largest + std::log(static_cast<double>(logits.size(2)));
}

/// The training example's step: mean cross-entropy over every (sequence, position). Writes the
/// loss's problem scale to `scale` unless null.
double loss_and_backward(Model& model, const attn::Tensor<Index, 2>& inputs,
                         const attn::Tensor<Index, 2>& targets, double* scale = nullptr) {
  Model::Cache cache;
  const auto logits = model.forward(inputs.view(), cache);
  if (scale != nullptr) *scale = cross_entropy_scale(logits);
  const Index rows = logits.size(0) * logits.size(1), vocab = logits.size(2);
  attn::Tensor<double, 3> grad(logits.shape());
  const double loss = attn::cross_entropy(attn::reshape<2>(logits.view(), {rows, vocab}),
                                          attn::reshape<1>(targets.view(), {rows}),
                                          attn::reshape<2>(grad.view(), {rows, vocab}));
  model.backward(cache, grad.view());
  return loss;
}

TEST(AttentionLanguageModel, ThreeAdamWStepsMatchPyTorch) {
  const auto io = attn_test::load_io("attention_language_model");
  auto model = fixture_model(io);
  const auto inputs = attn_test::fixture_indices<2>(io, "inputs");
  const auto targets = attn_test::fixture_indices<2>(io, "targets");
  const auto losses = fixture_tensor<double, 1>(io, "losses");
  attn::AdamW<double>::Options options;
  options.lr = 0.01;
  attn::AdamW<double> optimiser(options);
  optimiser.add(model);
  const auto initial = attn::state_dict(model);
  // The loss against its terms' size (cross_entropy_scale), tolerance 8 eps sqrt(the longest
  // reduction): the logits come through three stages (embedding sum, attention, head).
  const Index length =
      std::max({metadata_int(io, "vocab_size"), metadata_int(io, "d_model"), inputs.numel()});
  const double loss_tolerance = attn_test::rounding_tolerance<double>(0, length, 8);
  for (Index step = 0; step < 3; ++step) {
    optimiser.zero_grad();
    double scale = 0;
    const double loss = loss_and_backward(model, inputs, targets, &scale);
    EXPECT_TRUE(attn_test::close_normwise(std::vector<double>{loss},
                                          std::vector<double>{losses(step)}, scale, loss_tolerance,
                                          "loss before step " + std::to_string(step + 1)));
    optimiser.step();
  }
  // Each step p <- p - lr (u + wd p) rounds relative to |p| and to the step, and in Adam's first
  // steps |u| = |m_hat| / (sqrt(v_hat) + eps) <= 1.01 (Cauchy-Schwarz on the moment sums), so
  // every ||p_s|| <= ||p_0|| + 3 lr sqrt(n) and every step is at most about lr sqrt(n): the
  // problem scale after three steps is 3 (||p_0|| + 4 lr sqrt(n)), n the tensor's size, with
  // tolerance 8 eps (the update's handful of operations). A gradient of the wrong sign moves its
  // parameter by about 2 lr = 0.02, so this also says every gradient had PyTorch's sign. (Adam
  // divides by sqrt(v_hat), which would amplify the error of a gradient entry tiny against its
  // own rounding noise; here every entry is exactly 0, for unused embedding rows, or above 5e-6.)
  const auto pytorch = attn::io::to_state_dict<double>(io);
  for (const auto& [name, tensor] : attn::state_dict(model)) {
    if (name == "att.mask") continue;
    const auto& expected = pytorch.at("final." + name);
    ASSERT_EQ(tensor.shape, expected.shape) << name;
    const double n = static_cast<double>(tensor.values.size());
    const double scale =
        3 * (attn_test::frobenius(initial.at(name).values) + 4 * options.lr * std::sqrt(n));
    EXPECT_TRUE(attn_test::close_normwise(tensor.values, expected.values, scale,
                                          8 * attn_test::epsilon<double>(), name));
  }
}

TEST(AttentionLanguageModel, GradientsMatchFiniteDifferences) {
  Model model({6, 5, 4, 2}, attn::Generator(3));
  const attn::Tensor<Index, 2> inputs({2, 4}, {0, 5, 2, 2, 1, 3, 4, 0});
  const attn::Tensor<Index, 2> targets({2, 4}, {5, 2, 2, 1, 3, 4, 0, 1});
  attn::zero_grad(model);
  loss_and_backward(model, inputs, targets);
  const auto analytic = attn::gradients(model);
  const double loss_scale = cross_entropy_scale(model.forward(inputs.view()));
  const auto loss = [&] {
    const auto logits = model.forward(inputs.view());
    return attn::cross_entropy(attn::reshape<2>(logits.view(), {8, 6}),
                               attn::reshape<1>(targets.view(), {8}));
  };
  model.visit_state([&](const attn::StateEntry<double>& entry) {
    if (entry.kind != attn::StateEntry<double>::Kind::parameter) return;
    EXPECT_TRUE(attn_test::gradients_agree(
        analytic.at(entry.name).values.data(),
        attn_test::numeric_gradient(entry.data, entry.numel(), loss), loss_scale, entry.name));
  });
}

TEST(AttentionLanguageModel, RejectsTooManyTokensAndBadIds) {
  attn::AttentionLanguageModel<float> model({5, 4, 4, 2});
  const attn::Tensor<Index, 2> long_input({1, 5}, {0, 1, 2, 3, 4});
  ATTN_EXPECT_ERROR(model.forward(long_input.view()), std::invalid_argument,
                    {"5 tokens", "context_length is 4"});
  const attn::Tensor<Index, 2> bad_id({1, 2}, {0, 7});
  ATTN_EXPECT_ERROR(model.forward(bad_id.view()), std::out_of_range, {"id 7", "[0, 5)"});
}

}  // namespace
