// The checks every layer faces against its PyTorch fixtures, written once:
//  1. built from Generator(seed), the layer holds exactly the weights PyTorch initialised after
//     torch.manual_seed(seed) (PyTorch-compatible initialisation);
//  2. loaded from the fixture's state_dict (saved by PyTorch as safetensors), in eval mode, its
//     forward matches PyTorch's output to the stated tolerance.
#ifndef ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP
#define ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP

#include <gtest/gtest.h>

#include <cmath>
#include <string>

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

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP
