// The checks every layer faces against its PyTorch fixtures, written once:
//  1. built from Generator(seed), the layer holds exactly the weights PyTorch initialised after
//     torch.manual_seed(seed) (PyTorch-compatible initialisation);
//  2. loaded from the fixture's state_dict (saved by PyTorch as safetensors), in eval mode, its
//     forward matches PyTorch's output to the stated tolerance.
#ifndef ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP
#define ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "support/fixtures.hpp"

namespace attn_test {

/// Float fixtures: forward within 1e-5 of PyTorch, initial weights within 1 float ulp-ish.
inline constexpr double kForwardTolerance = 1e-5;
inline constexpr double kInitTolerance = 1e-7;

template <typename Layer>
::testing::AssertionResult same_state(const attn::StateDict<float>& actual,
                                      const attn::StateDict<float>& expected) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "state_dict sizes differ: " << actual.size() << " vs " << expected.size();
  }
  for (const auto& [name, tensor] : expected) {
    const auto found = actual.find(name);
    if (found == actual.end()) return ::testing::AssertionFailure() << "missing '" << name << "'";
    if (found->second.shape != tensor.shape) {
      return ::testing::AssertionFailure() << "'" << name << "' shape differs";
    }
    for (std::size_t i = 0; i < tensor.values.size(); ++i) {
      if (!(std::abs(found->second.values[i] - tensor.values[i]) <= kInitTolerance)) {
        return ::testing::AssertionFailure()
               << "'" << name << "'[" << i << "] = " << found->second.values[i]
               << " but PyTorch has " << tensor.values[i];
      }
    }
  }
  return ::testing::AssertionSuccess();
}

/// Runs both checks for one case. `make(file, generator)` builds the layer from the case's
/// metadata; `Rank` is the rank of the layer's input and output.
template <int Rank, typename Make>
void check_layer_fixture(const std::string& name, Make&& make) {
  SCOPED_TRACE(name);
  const auto io = load_io(name);
  const auto state = attn::io::to_state_dict<float>(
      attn::io::read_safetensors(fixture_path(name + ".safetensors")));
  attn::Generator generator(static_cast<std::uint64_t>(metadata_int(io, "seed")));
  auto layer = make(io, generator);
  EXPECT_TRUE(same_state<decltype(layer)>(attn::state_dict(layer), state))
      << "initialisation from Generator(seed) differs from PyTorch's";

  attn::Generator other(999);
  auto loaded = make(io, other);
  attn::load_state_dict(loaded, state);
  loaded.eval();
  const auto x = fixture_tensor<float, Rank>(io, "x");
  const auto expected = fixture_tensor<float, Rank>(io, "out");
  const auto out = loaded.forward(x.view());
  EXPECT_TRUE(all_close(out.view(), expected.view(), kForwardTolerance));
}

/// The tensors of a fixture file whose names start with `prefix`, prefix removed, as Scalar.
template <typename Scalar>
attn::StateDict<Scalar> prefixed(const attn::io::SafetensorsFile& file, const std::string& prefix) {
  attn::io::SafetensorsFile subset;
  for (const auto& [name, tensor] : file.tensors) {
    const bool is_double_entry = name.rfind("f64.", 0) == 0;
    if (name.rfind(prefix, 0) == 0 && (prefix.empty() ? !is_double_entry : true)) {
      subset.tensors[name.substr(prefix.size())] = tensor;
    }
  }
  return attn::io::to_state_dict<Scalar>(subset);
}

/// Normwise relative error max|a - e| / max(1, max|e|), for gradients whose magnitudes vary.
template <typename Scalar>
::testing::AssertionResult close_relative(const std::vector<Scalar>& actual,
                                          const std::vector<Scalar>& expected, double tolerance,
                                          const std::string& what) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << what << ": " << actual.size() << " values, expected " << expected.size();
  }
  double diff = 0, scale = 1;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    diff =
        std::max(diff, std::abs(static_cast<double>(actual[i]) - static_cast<double>(expected[i])));
    scale = std::max(scale, std::abs(static_cast<double>(expected[i])));
  }
  if (diff / scale <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": max abs error " << diff << ", relative to max(1, max|expected|) = " << scale
         << ": " << diff / scale << " > " << tolerance;
}

/// Backward against PyTorch autograd: the layer loaded from the fixture runs forward with a
/// cache, then backward with dL/dout = R (loss = sum(out * R)); dL/dx and every parameter's
/// gradient must match the fixture's. Float within 1e-5, double within 1e-10 (normwise).
template <typename Scalar, int Rank, typename Make>
void check_layer_gradients(const std::string& name, Make&& make) {
  SCOPED_TRACE(name);
  const bool is_double = std::is_same_v<Scalar, double>;
  const std::string prefix = is_double ? "f64." : "";
  const double tolerance = is_double ? 1e-10 : 1e-5;
  const auto io = load_io(name);
  const auto tensors = prefixed<Scalar>(io, prefix);
  attn::Generator generator(1);
  auto layer = make(io, generator);
  if constexpr (is_double) {
    attn::load_state_dict(layer, prefixed<Scalar>(io, "f64.state."));
  } else {
    attn::load_state_dict(layer, attn::io::to_state_dict<float>(attn::io::read_safetensors(
                                     fixture_path(name + ".safetensors"))));
  }
  layer.eval();
  attn::zero_grad(layer);
  const auto as_tensor = [&](const std::string& key) {
    const auto& t = tensors.at(key);
    attn::Shape<Rank> shape{};
    std::copy(t.shape.begin(), t.shape.end(), shape.begin());
    attn::Tensor<Scalar, Rank> result(shape);
    std::copy(t.values.begin(), t.values.end(), result.data());
    return result;
  };
  const auto x = as_tensor("x");
  const auto R = as_tensor("R");
  typename decltype(layer)::Cache cache;
  const auto out = layer.forward(x.view(), cache);
  EXPECT_TRUE(all_close(out.view(), as_tensor("out").view(), is_double ? 1e-12 : 1e-5));
  const auto grad_x = layer.backward(cache, R.view());
  EXPECT_TRUE(close_relative(std::vector<Scalar>(grad_x.data(), grad_x.data() + grad_x.numel()),
                             tensors.at("grad.x").values, tolerance, "grad x"));
  const auto grads = attn::gradients(layer);
  std::size_t checked = 0;
  for (const auto& [key, tensor] : tensors) {
    if (key.rfind("grad.", 0) != 0 || key == "grad.x") continue;
    const std::string parameter = key.substr(5);
    ASSERT_EQ(grads.count(parameter), 1u) << "no gradient for " << parameter;
    EXPECT_TRUE(close_relative(grads.at(parameter).values, tensor.values, tolerance, parameter));
    ++checked;
  }
  EXPECT_EQ(checked, grads.size()) << "every parameter gradient is compared";
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP
