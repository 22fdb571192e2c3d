#include "attn/state/state_dict.hpp"

#include <gtest/gtest.h>

#include "attn/layers/multi_head_attention.hpp"
#include "support/expect_error.hpp"

namespace {

TEST(StateDict, RoundTripsBetweenLayers) {
  attn::MultiHeadAttention<double> source(4, 6, 5, 0.0, 3, true, attn::Generator(1));
  attn::MultiHeadAttention<double> target(4, 6, 5, 0.0, 3, true, attn::Generator(2));
  attn::load_state_dict(target, attn::state_dict(source));
  const auto a = attn::state_dict(source), b = attn::state_dict(target);
  ASSERT_EQ(a.size(), 9u);  // 3 x (weight, bias), out_proj (weight, bias), mask
  for (const auto& [name, tensor] : a) EXPECT_EQ(tensor.values, b.at(name).values) << name;
}

TEST(StateDict, MaskBufferIsOptionalButMustBeCausal) {
  attn::MultiHeadAttention<float> layer(4, 6, 5, 0.0f, 3);
  auto dict = attn::state_dict(layer);
  dict.erase("mask");
  EXPECT_NO_THROW(attn::load_state_dict(layer, dict));
  dict = attn::state_dict(layer);
  dict.at("mask").values[0] = 1.0f;
  ATTN_EXPECT_ERROR(attn::load_state_dict(layer, dict), std::invalid_argument,
                    {"'mask' is not the causal mask"});
}

TEST(StateDict, MissingUnexpectedAndMisShapedEntriesAreNamed) {
  attn::MultiHeadAttention<float> layer(4, 6, 5, 0.0f, 3);
  const auto before = attn::state_dict(layer);
  auto dict = before;
  dict.erase("W_key.weight");
  dict["W_keys.weight"] = before.at("W_key.weight");
  dict.at("out_proj.bias").shape = {7};
  dict.at("out_proj.bias").values.resize(7);
  ATTN_EXPECT_ERROR(attn::load_state_dict(layer, dict), std::invalid_argument,
                    {"missing key 'W_key.weight' (6, 4)", "unexpected key 'W_keys.weight'",
                     "'out_proj.bias' has shape (7) but the layer expects (6)"});
  // Nothing was loaded: the layer still holds its own weights.
  const auto after = attn::state_dict(layer);
  for (const auto& [name, tensor] : before) EXPECT_EQ(tensor.values, after.at(name).values);
}

}  // namespace
