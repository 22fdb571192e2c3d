// attn::Autocast: the scope rules, and Linear's bfloat16 arithmetic (forward and backward, float
// master weights, stored as float or as bfloat16) against torch.autocast("cpu", bfloat16)
// (tests/fixtures/generate_autocast.py, linear_autocast.io.safetensors).
//
// Two comparisons, elementwise, each with a bound derived from the arithmetic:
// - against the exact products of the rounded operands (the fixture's float64 `exact.`): attn
//   rounds x, W and the incoming gradient to bfloat16 (their products are exact in float) and
//   sums in float, so |attn - exact| <= (n + 2) eps_float sum |a b| over the n terms of each sum
//   (Higham 3.5; + 1 for the bias add). This is the check of attn's arithmetic.
// - against PyTorch's autocast results, which are rounded to bfloat16 where attn keeps float:
//   the product's result, the bias (cast to bfloat16 by autocast) and their sum, three
//   roundings of at most 2^-9 of sum |a b| + |b| each, so |attn - torch| <= 2^-7 (sum |a b| + |b|)
//   + the bound above. The bias gradient: PyTorch sums the bfloat16 gradient and rounds, attn
//   sums the float one: |attn - torch| <= 2^-7 sum |R|.
#include "attn/autocast.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>

#include "attn/layers/linear.hpp"
#include "support/fixtures.hpp"

namespace {

using attn::Index;
using attn_test::fixture_tensor;

TEST(Autocast, ScopesNestAndRestorePerThread) {
  EXPECT_EQ(attn::autocast_compute(), attn::Compute::scalar);
  {
    const attn::Autocast outer;
    EXPECT_EQ(attn::autocast_compute(), attn::Compute::bfloat16);
    {
      const attn::Autocast inner(attn::Compute::scalar);
      EXPECT_EQ(attn::autocast_compute(), attn::Compute::scalar);
    }
    EXPECT_EQ(attn::autocast_compute(), attn::Compute::bfloat16);
    attn::Compute other_thread = attn::Compute::bfloat16;
    std::thread([&] { other_thread = attn::autocast_compute(); }).join();
    EXPECT_EQ(other_thread, attn::Compute::scalar) << "a scope belongs to its thread";
  }
  EXPECT_EQ(attn::autocast_compute(), attn::Compute::scalar);
}

// max over elements of |actual - reference| / bound; the check passes at <= 1.
double worst_ratio(const attn::Tensor<float, 2>& actual, const attn::Tensor<double, 2>& reference,
                   const attn::Tensor<double, 2>& bound) {
  double worst = 0;
  for (Index i = 0; i < actual.numel(); ++i) {
    const double error = std::abs(double(actual.data()[i]) - reference.data()[i]);
    if (std::isnan(error)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, error / bound.data()[i]);
  }
  return worst;
}

// sum_k |a(i, k)| |b(j, k)| for every (i, j), of the bfloat16-rounded operands.
attn::Tensor<double, 2> magnitude(const attn::Tensor<float, 2>& a,
                                  const attn::Tensor<float, 2>& b) {
  attn::Tensor<double, 2> sums({a.size(0), b.size(0)});
  for (Index i = 0; i < a.size(0); ++i) {
    for (Index j = 0; j < b.size(0); ++j) {
      double sum = 0;
      for (Index k = 0; k < a.size(1); ++k) {
        sum += std::abs(double(attn::round_to_bfloat16(a(i, k))) *
                        double(attn::round_to_bfloat16(b(j, k))));
      }
      sums(i, j) = sum;
    }
  }
  return sums;
}

attn::Tensor<float, 2> transposed(const attn::Tensor<float, 2>& t) {
  return attn::Tensor<float, 2>(attn::transpose(t.view(), 0, 1));
}

void check_linear_autocast(Index rows, attn::WeightFormat format) {
  const auto io = attn_test::load_io("linear_autocast");
  const std::string p = std::to_string(rows) + ".";
  const Index in = attn_test::metadata_int(io, "in_features");
  const Index out = attn_test::metadata_int(io, "out_features");
  attn::Linear<float> layer = attn::Linear<float>::zeros(in, out);
  layer.weight() = fixture_tensor<float, 2>(io, "weight");
  layer.bias() = fixture_tensor<float, 1>(io, "bias");
  const auto master = layer.weight();
  layer.set_weight_format(format);
  const auto x = fixture_tensor<float, 2>(io, p + "x");
  const auto r = fixture_tensor<float, 2>(io, p + "R");
  const attn::Autocast autocast(attn::Compute::bfloat16);
  const auto y = layer.forward(x.view());
  const auto grad_x = layer.backward(x.view(), r.view());
  const std::string where = std::to_string(rows) + " rows, weight as " +
                            (format == attn::WeightFormat::scalar ? "float" : "bfloat16");

  const double eps = std::numeric_limits<float>::epsilon(), u = std::ldexp(1.0, -7);
  // out: n = in_features terms and the bias.
  attn::Tensor<double, 2> out_scale = magnitude(x, master);
  attn::Tensor<double, 2> out_exact_bound(out_scale.shape()), out_torch_bound(out_scale.shape());
  for (Index i = 0; i < rows; ++i) {
    for (Index o = 0; o < out; ++o) {
      const double bias = std::abs(double(layer.bias()(o)));
      out_exact_bound(i, o) = double(in + 2) * eps * (out_scale(i, o) + bias);
      out_torch_bound(i, o) = u * (out_scale(i, o) + bias) + out_exact_bound(i, o);
    }
  }
  EXPECT_LE(worst_ratio(y, fixture_tensor<double, 2>(io, p + "exact.out"), out_exact_bound), 1)
      << "out against the exact products, " << where;
  EXPECT_LE(worst_ratio(y, fixture_tensor<double, 2>(io, p + "out"), out_torch_bound), 1)
      << "out against PyTorch's autocast, " << where;

  // grad_x = R W: n = out_features terms; grad_weight = R^T x: n = rows terms.
  const auto check_gradient = [&](const attn::Tensor<float, 2>& actual, const std::string& name,
                                  const attn::Tensor<double, 2>& scale, Index terms) {
    attn::Tensor<double, 2> exact_bound(scale.shape()), torch_bound(scale.shape());
    for (Index i = 0; i < scale.numel(); ++i) {
      exact_bound.data()[i] = double(terms + 1) * eps * scale.data()[i];
      torch_bound.data()[i] = u * scale.data()[i] + exact_bound.data()[i];
    }
    EXPECT_LE(worst_ratio(actual, fixture_tensor<double, 2>(io, p + "exact." + name), exact_bound),
              1)
        << name << " against the exact products, " << where;
    EXPECT_LE(worst_ratio(actual, fixture_tensor<double, 2>(io, p + name), torch_bound), 1)
        << name << " against PyTorch's autocast, " << where;
  };
  check_gradient(grad_x, "grad.x", magnitude(r, transposed(master)), out);
  check_gradient(layer.weight_grad(), "grad.weight", magnitude(transposed(r), transposed(x)), rows);
  const auto torch_bias_grad = fixture_tensor<double, 1>(io, p + "grad.bias");
  for (Index o = 0; o < out; ++o) {
    double sum_abs = 0;
    for (Index i = 0; i < rows; ++i) sum_abs += std::abs(double(r(i, o)));
    EXPECT_LE(std::abs(double(layer.bias_grad()(o)) - torch_bias_grad(o)), u * sum_abs)
        << "grad.bias(" << o << "), " << where;
  }
}

// 5 rows stream the weights (or fill part of a vdpbf16ps tile); 300 take the blocked product.
TEST(Autocast, LinearMatchesPyTorchAutocast) {
  for (Index rows : {5, 300}) {
    for (auto format : {attn::WeightFormat::scalar, attn::WeightFormat::bfloat16}) {
      check_linear_autocast(rows, format);
    }
  }
}

// Outside a scope nothing is rounded: the float layer's output is the float product, which the
// rounded one misses by far more than float's rounding.
TEST(Autocast, OutsideAScopeLinearStaysFloat) {
  const auto io = attn_test::load_io("linear_autocast");
  attn::Linear<float> layer = attn::Linear<float>::zeros(70, 37);
  layer.weight() = fixture_tensor<float, 2>(io, "weight");
  layer.bias() = fixture_tensor<float, 1>(io, "bias");
  const auto x = fixture_tensor<float, 2>(io, "300.x");
  const auto plain = layer.forward(x.view());
  attn::Tensor<float, 2> rounded;
  {
    const attn::Autocast autocast;
    rounded = layer.forward(x.view());
  }
  const auto again = layer.forward(x.view());
  double differs = 0;
  for (Index i = 0; i < plain.numel(); ++i) {
    ASSERT_EQ(plain.data()[i], again.data()[i]) << i;
    differs = std::max(differs, double(std::abs(plain.data()[i] - rounded.data()[i])));
  }
  EXPECT_GT(differs, 1e-4) << "the scope changed nothing";
}

}  // namespace
