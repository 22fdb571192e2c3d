#include "attn/layers/linear.hpp"

#include <gtest/gtest.h>

#include "support/expect_error.hpp"
#include "support/layer_fixture.hpp"

namespace {

TEST(Linear, MatchesPyTorchWithAndWithoutBias) {
  for (const char* name : {"linear_bias1", "linear_bias0"}) {
    attn_test::check_layer_fixture<3>(name, [](const auto& io, attn::Generator& generator) {
      return attn::Linear<float>(attn_test::metadata_int(io, "in_features"),
                                 attn_test::metadata_int(io, "out_features"),
                                 attn_test::metadata_int(io, "bias") != 0, generator);
    });
  }
}

TEST(Linear, StridedInputGivesTheSameAnswerAsContiguous) {
  const auto io = attn_test::load_io("linear_bias1");
  const auto x = attn_test::fixture_tensor<float, 3>(io, "x");  // (2, 4, 5)
  const auto expected = attn_test::fixture_tensor<float, 3>(io, "out");
  attn::Linear<float> layer(5, 3);
  attn::io::load_safetensors(layer, attn_test::fixture_path("linear_bias1.safetensors"));
  // Batch and token dims swapped: a view whose leading dims do not collapse into rows.
  const attn::Tensor<float, 3> swapped(attn::transpose(x.view(), 0, 1));
  const auto out = layer.forward(attn::transpose(swapped.view(), 0, 1));
  EXPECT_TRUE(attn_test::all_close(out.view(), expected.view(), 1e-6));
}

TEST(Linear, StateNamesAndShapesArePyTorchs) {
  attn::Linear<float> layer(5, 3);
  const auto dict = attn::state_dict(layer);
  ASSERT_EQ(dict.size(), 2u);
  EXPECT_EQ(dict.at("weight").shape, (std::vector<attn::Index>{3, 5}));
  EXPECT_EQ(dict.at("bias").shape, (std::vector<attn::Index>{3}));
  EXPECT_EQ(attn::parameter_count(layer), 18);
}

TEST(Linear, BadInputIsAnError) {
  attn::Linear<float> layer(5, 3);
  attn::Tensor<float, 2> x({4, 6});
  ATTN_EXPECT_ERROR(layer.forward(x.view()), attn::ShapeError, {"(4, 6)", "in_features (5)"});
  ATTN_EXPECT_ERROR(attn::Linear<float>(0, 3), std::invalid_argument, {"in_features (0)"});
}

}  // namespace
