// Tests of attn/state/gradient.hpp and the gradients of the parameter protocol: nothing holds a
// gradient until something needs one (a backward, an optimiser, an accessor), so a model built
// or loaded for inference carries its weights only.
#include "attn/state/gradient.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <utility>
#include <vector>

#include "attn/layers/linear.hpp"
#include "attn/models/gpt_model.hpp"
#include "attn/optim/adamw.hpp"
#include "attn/state/state_dict.hpp"

namespace {

// How many parameters of `layer` have an allocated gradient, and how many parameters it has.
template <typename Layer>
std::pair<int, int> allocated_gradients(const Layer& layer) {
  using Scalar = typename Layer::Scalar;
  std::pair<int, int> counts{0, 0};
  layer.visit_state([&](const attn::StateEntry<const Scalar>& entry) {
    if (entry.kind != attn::StateKind::parameter) return;
    counts.first += entry.grad.if_allocated() != nullptr;
    ++counts.second;
  });
  return counts;
}

attn::GPTModel<float> gradient_test_model() {
  return attn::GPTModel<float>({11, 6, 8, 2, 2, 0.0, true}, attn::Generator(5));
}

TEST(Gradient, AllocatedAsZerosAtFirstUse) {
  attn::Gradient<float, 2> gradient(attn::Shape<2>{3, 4});
  EXPECT_FALSE(gradient.allocated());
  EXPECT_EQ(gradient.data_if_allocated(), nullptr);
  const attn::Tensor<float, 2>& values = std::as_const(gradient).get();
  EXPECT_TRUE(gradient.allocated());
  EXPECT_EQ(values.shape(), (attn::Shape<2>{3, 4}));
  for (attn::Index i = 0; i < values.numel(); ++i) EXPECT_EQ(values.data()[i], 0.0f);
  EXPECT_EQ(gradient.data_if_allocated(), values.data());
}

TEST(Gradient, InferenceAllocatesNone) {
  // Built, saved and loaded again, zero_grad, switched to bfloat16 (which a mutable visit such
  // as zero_grad's would drop again), run forward: no gradient anywhere.
  auto model = gradient_test_model();
  const auto source = gradient_test_model();
  attn::load_state_dict(model, attn::state_dict(source));
  attn::zero_grad(model);
  model.eval();
  model.set_weight_format(attn::WeightFormat::bfloat16);
  ASSERT_EQ(std::as_const(model).out_head().weight_format(), attn::WeightFormat::bfloat16);
  const attn::Tensor<attn::Index, 2> ids({1, 4}, {1, 2, 3, 4});
  const auto logits = model.forward(ids.view());
  EXPECT_EQ(logits.size(2), 11);
  const auto [allocated, parameters] = allocated_gradients(model);
  EXPECT_GT(parameters, 20);
  EXPECT_EQ(allocated, 0);
  // gradients() of an untouched model: every parameter, all zeros, nothing allocated for it.
  const auto grads = attn::gradients(model);
  EXPECT_EQ(static_cast<int>(grads.size()), parameters);
  for (const auto& [name, gradient] : grads) {
    for (float value : gradient.values) EXPECT_EQ(value, 0.0f) << name;
  }
  EXPECT_EQ(allocated_gradients(model).first, 0);
}

TEST(Gradient, ConstReadersAllocateOnce) {
  const attn::Linear<float> layer(4, 3);
  std::vector<const float*> seen(8);
  std::vector<std::thread> readers;
  for (std::size_t t = 0; t < seen.size(); ++t) {
    readers.emplace_back([&, t] { seen[t] = layer.weight_grad().data(); });
  }
  for (auto& reader : readers) reader.join();
  for (const float* data : seen) EXPECT_EQ(data, seen.front());
  EXPECT_EQ(layer.weight_grad().shape(), (attn::Shape<2>{3, 4}));
}

TEST(Gradient, PlainStorageStillServesAsAGradient) {
  // A layer of the user's own may keep its gradient itself and hand out a pointer, as before.
  float data[6] = {}, grad[6] = {1, 2, 3, 4, 5, 6};
  const auto entry = attn::parameter_entry<float>("w", {2, 3}, data, grad);
  EXPECT_EQ(entry.grad.get(), grad);
  EXPECT_EQ(entry.grad.if_allocated(), grad);
  EXPECT_EQ(entry.grad.offset_by(3).get(), grad + 3);
}

TEST(Gradient, BackwardAndOptimisersAllocateEvery) {
  auto model = gradient_test_model();
  attn::AdamW<float> optimiser;
  optimiser.add(model);  // takes every gradient's address: all allocated now
  EXPECT_EQ(allocated_gradients(model).first, allocated_gradients(model).second);

  auto trained = gradient_test_model();
  typename attn::GPTModel<float>::Cache cache;
  const attn::Tensor<attn::Index, 2> ids({1, 4}, {1, 2, 3, 4});
  const auto logits = trained.forward(ids.view(), cache);
  attn::Tensor<float, 3> grad(logits.shape(), 0.01f);
  trained.backward(cache, grad.view());
  const auto [allocated, parameters] = allocated_gradients(trained);
  EXPECT_EQ(allocated, parameters);
  // The split query/key/value entries see the stacked projection's gradient, block by block:
  // with a uniform dlogits, W_value's gradient is not zero.
  const auto grads = attn::gradients(trained);
  double sum = 0;
  for (float value : grads.at("trf_blocks.0.att.W_value.weight").values) sum += std::abs(value);
  EXPECT_GT(sum, 0.0);
}

}  // namespace
