#include "attn/layers/linear.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "attn/optim/sgd.hpp"
#include "support/expect_error.hpp"
#include "support/gradient_check.hpp"
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
  // Against ||W||_2 ||x||_F + sqrt(rows) |b| (layer_scales), tolerance 8 eps sqrt(max(rows,
  // in_features, out_features)).
  const auto scales = attn_test::layer_scales(attn::state_dict(layer), x, nullptr);
  EXPECT_TRUE(attn_test::close_normwise(out, expected, scales.out, scales.tolerance<float>()));
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

TEST(Linear, GradientsMatchPyTorchAutograd) {
  for (const char* name : {"linear_bias1", "linear_bias0"}) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    attn::Linear<float> layer(5, 3, io.metadata.at("bias") == "1");
    attn::io::load_safetensors(layer, attn_test::fixture_path(std::string(name) + ".safetensors"));
    const auto x = attn_test::fixture_tensor<float, 3>(io, "x");
    const auto R = attn_test::fixture_tensor<float, 3>(io, "R");
    attn::zero_grad(layer);
    const auto grad_x = layer.backward(x.view(), R.view());
    // Normwise against layer_scales: dx = R W against ||R||_F ||W||_2, dW = R^T x against
    // ||R|| ||x||, db = sum_n R_n against sum_n |R_n|; tolerance 8 eps sqrt(max(rows,
    // in_features, out_features)).
    const auto scales = attn_test::layer_scales(attn::state_dict(layer), x, &R);
    const double tolerance = scales.tolerance<float>();
    using attn_test::close_normwise;
    EXPECT_TRUE(close_normwise(grad_x, attn_test::fixture_tensor<float, 3>(io, "grad.x"),
                               scales.grad_x, tolerance, "grad x"));
    const auto once = attn_test::fixture_tensor<float, 2>(io, "grad.weight");
    EXPECT_TRUE(
        close_normwise(layer.weight_grad(), once, scales.gradient("weight"), tolerance, "weight"));
    if (layer.has_bias()) {
      EXPECT_TRUE(close_normwise(layer.bias_grad(),
                                 attn_test::fixture_tensor<float, 1>(io, "grad.bias"),
                                 scales.gradient("bias"), tolerance, "bias"));
    }
    // Accumulates: a second backward doubles the parameter gradients.
    layer.backward(x.view(), R.view());
    attn::Tensor<float, 2> twice(once);
    for (attn::Index i = 0; i < twice.numel(); ++i) twice.data()[i] *= 2;
    EXPECT_TRUE(close_normwise(layer.weight_grad(), twice, 2 * scales.gradient("weight"), tolerance,
                               "weight after two backwards"));
  }
}

TEST(Linear, GradientCheckWithStridedInput) {
  attn::Linear<double> layer(4, 3, true, attn::Generator(1));
  attn::Generator generator(2);
  auto x = attn_test::random_tensor<3>({2, 5, 4}, generator);
  const auto R = attn_test::random_tensor<3>({2, 5, 3}, generator);
  const auto loss = [&] {
    const auto y = layer.forward(x.view());
    double sum = 0;
    for (attn::Index i = 0; i < y.numel(); ++i) sum += y.data()[i] * R.data()[i];
    return sum;
  };
  attn::zero_grad(layer);
  // The same input handed over as a strided (transposed-back) view must give the same answer.
  const attn::Tensor<double, 3> swapped(attn::transpose(x.view(), 0, 1));
  const auto grad_x = layer.backward(attn::transpose(swapped.view(), 0, 1), R.view());
  const double loss_scale = attn_test::product_loss_scale(layer.forward(x.view()), R);
  using attn_test::gradients_agree;
  using attn_test::numeric_gradient;
  EXPECT_TRUE(
      gradients_agree(grad_x.data(), numeric_gradient(x.data(), x.numel(), loss), loss_scale, "x"));
  EXPECT_TRUE(gradients_agree(layer.weight_grad().data(),
                              numeric_gradient(layer.weight().data(), 12, loss), loss_scale,
                              "weight"));
  EXPECT_TRUE(gradients_agree(layer.bias_grad().data(),
                              numeric_gradient(layer.bias().data(), 3, loss), loss_scale, "bias"));
}

// Output o of y = x W^T + b against a double loop over the layer's weights: elementwise within
// (in_features + 2) eps of sum |w x| + |b| (Higham 3.5). x_at(c) is the input row's element c.
template <typename Input>
::testing::AssertionResult linear_output_near(const attn::Linear<float>& layer, Input x_at,
                                              attn::Index o, float actual) {
  double expected = layer.bias()(o), scale = std::abs(expected);
  for (attn::Index c = 0; c < layer.in_features(); ++c) {
    expected += double(layer.weight()(o, c)) * double(x_at(c));
    scale += std::abs(double(layer.weight()(o, c)) * double(x_at(c)));
  }
  const double bound =
      double(layer.in_features() + 2) * std::numeric_limits<float>::epsilon() * scale;
  if (std::abs(actual - expected) <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << actual << " vs " << expected << " (bound " << bound << ")";
}

// Leading dims of extent 1 may have any stride: a (2, 1, 1, in) view whose unit dims have strides
// that are not the rows' is still read row by row (its rows are in_padded apart).
TEST(Linear, UnitLeadingDimsWithAnyStrideReadTheRightRows) {
  constexpr attn::Index in = 5, out = 3, in_padded = 8;
  const attn::Linear<float> layer(in, out, true, attn::Generator(4));
  std::vector<float> values(2 * in_padded);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * float(i) - 1.0f;
  const attn::TensorView<const float, 4> x(values.data(), {2, 1, 1, in},
                                           {in_padded, in_padded, 6, 1});
  const attn::Tensor<float, 4> y = layer.forward(x);
  for (attn::Index b = 0; b < 2; ++b) {
    for (attn::Index o = 0; o < out; ++o) {
      const auto row = [&](attn::Index c) { return values[b * in_padded + c]; };
      EXPECT_TRUE(linear_output_near(layer, row, o, y(b, 0, 0, o))) << "(" << b << ", " << o << ")";
    }
  }
}

// With WeightFormat::bfloat16 every weight is rounded as PyTorch's .bfloat16() rounds it, and
// both products over the 2-byte weights, the few-row one streaming them and the one over more
// rows widening blocks of them, are y = x W^T + b with the rounded weights: against a double loop,
// elementwise within (in_features + 2) eps of sum |w x| + |b| (Higham 3.5).
TEST(Linear, BFloat16WeightsAreRoundedAndBothProductsUseThem) {
  constexpr attn::Index in = 70, out = 37;
  attn::Linear<float> layer(in, out, true, attn::Generator(5));
  const attn::Tensor<float, 2> original = std::as_const(layer).weight();
  layer.set_weight_format(attn::WeightFormat::bfloat16);
  ASSERT_EQ(layer.weight_format(), attn::WeightFormat::bfloat16);
  const auto& weight = std::as_const(layer).weight();
  for (attn::Index i = 0; i < weight.numel(); ++i) {
    ASSERT_EQ(weight.data()[i], attn::round_to_bfloat16(original.data()[i])) << i;
  }
  attn::Generator generator(6);
  // 8 rows and fewer stream the weights; more widen them into blocks for a GEMM.
  for (attn::Index rows : {1, 8, 9, 20, 300}) {
    attn::Tensor<float, 2> x({rows, in});
    for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.uniform<float>(-1, 1);
    const attn::Tensor<float, 2> y = layer.forward(x.view());
    for (attn::Index r = 0; r < rows; ++r) {
      for (attn::Index o = 0; o < out; ++o) {
        const auto row = [&](attn::Index c) { return x(r, c); };
        EXPECT_TRUE(linear_output_near(std::as_const(layer), row, o, y(r, o)))
            << rows << " rows: y(" << r << ", " << o << ")";
      }
    }
  }
}

// The few-row product reads any view the GEMM reads: rows of a rank-3 input whose leading dims do
// not collapse (a transposed batch), a single rank-1 row, and a strided output row.
TEST(Linear, BFloat16ProductTakesStridedViews) {
  constexpr attn::Index in = 40, out = 9;
  attn::Linear<float> layer(in, out, true, attn::Generator(8));
  layer.set_weight_format(attn::WeightFormat::bfloat16);
  attn::Generator generator(9);
  attn::Tensor<float, 3> stored({3, 2, in});
  for (attn::Index i = 0; i < stored.numel(); ++i) {
    stored.data()[i] = generator.uniform<float>(-1, 1);
  }
  const auto x = attn::transpose(stored.view(), 0, 1);  // (2, 3, in), batch stride in
  const attn::Tensor<float, 3> y = layer.forward(x);
  attn::Tensor<float, 2> wide({3, 2 * out});  // rows of 2 out, written through a strided view
  const auto half = attn::slice(wide.view(), 1, 0, out);
  layer.forward_into(attn::select(x, 0, 1), half);
  const attn::Tensor<float, 1> one = layer.forward(attn::select(attn::select(x, 0, 0), 0, 2));
  const auto check = [&](float actual, attn::Index b, attn::Index t, attn::Index o) {
    const auto row = [&](attn::Index c) { return x(b, t, c); };
    EXPECT_TRUE(linear_output_near(std::as_const(layer), row, o, actual))
        << "(" << b << ", " << t << ", " << o << ")";
  };
  for (attn::Index o = 0; o < out; ++o) {
    for (attn::Index b = 0; b < 2; ++b) {
      for (attn::Index t = 0; t < 3; ++t) check(y(b, t, o), b, t, o);
    }
    for (attn::Index t = 0; t < 3; ++t) check(wide(t, o), 1, t, o);
    check(one(o), 0, 2, o);
  }
}

// The 2-byte copy cannot disagree with the weight: every way of changing the weight returns the
// layer to WeightFormat::scalar; reading it (const) does not.
TEST(Linear, ChangingTheWeightDropsTheBFloat16Copy) {
  attn::Linear<float> layer(6, 5);
  const auto bfloat16 = [&] {
    layer.set_weight_format(attn::WeightFormat::bfloat16);
    return layer.weight_format() == attn::WeightFormat::bfloat16;
  };
  ASSERT_TRUE(bfloat16());
  const auto dict = attn::state_dict(std::as_const(layer));
  EXPECT_EQ(attn::parameter_count(layer), 35);
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::bfloat16) << "const visits keep it";
  layer.weight()(0, 0) = 0.1f;
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::scalar) << "weight()";
  ASSERT_TRUE(bfloat16());
  attn::load_state_dict(layer, dict);
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::scalar) << "load_state_dict";
  ASSERT_TRUE(bfloat16());
  attn::zero_grad(layer);  // a mutable visit, as an optimiser's
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::scalar) << "mutable visit_state";
  ASSERT_TRUE(bfloat16());
  attn::Generator generator(3);
  layer.reset_parameters(generator);
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::scalar) << "reset_parameters";
  attn::SGD<float> sgd({/*lr=*/0.1f});
  sgd.add(layer);  // before the switch, as in a training loop that samples text each epoch
  ASSERT_TRUE(bfloat16());
  sgd.step();
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::scalar) << "an optimiser's step";
  ASSERT_TRUE(bfloat16());
  layer.set_weight_format(attn::WeightFormat::scalar);
  EXPECT_EQ(layer.weight_format(), attn::WeightFormat::scalar);
  const auto& weight = std::as_const(layer).weight();
  for (attn::Index i = 0; i < weight.numel(); ++i) {
    EXPECT_EQ(weight.data()[i], attn::round_to_bfloat16(weight.data()[i]))
        << "the weights stay rounded: " << i;
  }
}

}  // namespace
