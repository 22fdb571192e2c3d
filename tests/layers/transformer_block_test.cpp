// The book's chapter-4 layers against PyTorch (tests/fixtures/generate_gpt.py, float32 and
// float64): LayerNorm, GELU, FeedForward and TransformerBlock, forward and backward, seeded
// initialisation, training-mode dropout with PyTorch's masks, strided inputs, a KV-cache decode
// and the errors a user meets.
//
// Tolerances are normwise (support/normwise.hpp), tol = rounding_tolerance<Scalar>(0, n, 8) =
// 8 eps sqrt(n), n the layer's longest reduction (emb_dim for LayerNorm, 1 for GELU, the hidden
// width 4 emb_dim for FeedForward and the block), c = 8 for two implementations each rounding
// (measured: the worst comparison uses 35 % of it, FeedForward's in double; most under 10 %),
// against these scales:
//  - LayerNorm, GELU, FeedForward: bounds from the inputs and weights (tb_* functions below),
//    each stating what it bounds;
//  - TransformerBlock: the float64 PyTorch result's own norm for every quantity that is not
//    zero in exact arithmetic (a bound through LayerNorm's 1 / sigma, the softmax and two
//    residual branches would be orders of magnitude loose), and for the key bias, whose
//    gradient is zero in exact arithmetic, the size of its terms, sum over rows of |dL/dkeys|,
//    which PyTorch recorded (entry "scale.att.W_key.bias").
#include "attn/layers/transformer_block.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/layers/feed_forward.hpp"
#include "attn/layers/gelu.hpp"
#include "attn/layers/layer_norm.hpp"
#include "attn/state/state_dict.hpp"
#include "support/attention_bounds.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"
#include "support/rounding.hpp"

namespace {

using attn::Index;

template <typename Scalar>
std::string tb_prefix() {
  return std::is_same_v<Scalar, double> ? "f64." : "";
}

/// Entry `name` of the fixture in the test's precision: "f64.<name>" for double.
template <typename Scalar, int Rank>
attn::Tensor<Scalar, Rank> tb_get(const attn::io::SafetensorsFile& io, const std::string& name) {
  return attn_test::fixture_tensor<Scalar, Rank>(io, tb_prefix<Scalar>() + name);
}

/// The entries whose names start with `prefix`, prefix removed, as a StateDict.
template <typename Scalar>
attn::StateDict<Scalar> tb_entries(const attn::io::SafetensorsFile& io, const std::string& prefix) {
  attn::io::SafetensorsFile subset;
  for (const auto& [name, tensor] : io.tensors) {
    if (name.rfind(prefix, 0) == 0) subset.tensors[name.substr(prefix.size())] = tensor;
  }
  return attn::io::to_state_dict<Scalar>(subset);
}

template <typename Scalar>
double tb_tolerance(Index length) {
  return attn_test::rounding_tolerance<Scalar>(0, length, 8);
}

template <typename Scalar, int Rank>
double tb_max_abs(const attn::Tensor<Scalar, Rank>& t) {
  double largest = 0;
  for (Index i = 0; i < t.numel(); ++i) largest = std::max(largest, std::abs(double(t.data()[i])));
  return largest;
}

/// A copy of x (B, T, C) behind a strided view: the (B, T, C) columns of a (B, T, C + 3) tensor,
/// so its rows are not contiguous. The storage lives in `padded`.
template <typename Scalar>
attn::TensorView<const Scalar, 3> tb_padded_view(const attn::Tensor<Scalar, 3>& x,
                                                 attn::Tensor<Scalar, 3>& padded) {
  padded = attn::Tensor<Scalar, 3>({x.size(0), x.size(1), x.size(2) + 3}, Scalar(99));
  const auto view = attn::slice(padded.view(), 2, 1, 1 + x.size(2));
  for (Index b = 0; b < x.size(0); ++b) {
    for (Index t = 0; t < x.size(1); ++t) {
      for (Index c = 0; c < x.size(2); ++c) view(b, t, c) = x(b, t, c);
    }
  }
  return view;
}

/// A copy of x (B, T, C) as the transpose of a (T, B, C) tensor: batch stride C, token stride
/// B C, a view no row-block map covers in one piece.
template <typename Scalar>
attn::TensorView<const Scalar, 3> tb_transposed_view(const attn::Tensor<Scalar, 3>& x,
                                                     attn::Tensor<Scalar, 3>& storage) {
  storage = attn::Tensor<Scalar, 3>({x.size(1), x.size(0), x.size(2)});
  for (Index b = 0; b < x.size(0); ++b) {
    for (Index t = 0; t < x.size(1); ++t) {
      for (Index c = 0; c < x.size(2); ++c) storage(t, b, c) = x(b, t, c);
    }
  }
  return attn::transpose(attn::TensorView<const Scalar, 3>(storage.view()), 0, 1);
}

template <typename Scalar>
class LayerNormTyped : public ::testing::Test {};
template <typename Scalar>
class GeluTyped : public ::testing::Test {};
template <typename Scalar>
class FeedForwardTyped : public ::testing::Test {};
template <typename Scalar>
class TransformerBlockTyped : public ::testing::Test {};
using TbScalars = ::testing::Types<float, double>;
// (The empty name generator keeps -Wpedantic quiet.)
TYPED_TEST_SUITE(LayerNormTyped, TbScalars, );
TYPED_TEST_SUITE(GeluTyped, TbScalars, );
TYPED_TEST_SUITE(FeedForwardTyped, TbScalars, );
TYPED_TEST_SUITE(TransformerBlockTyped, TbScalars, );

// ---- LayerNorm ---------------------------------------------------------------------------------

/// Bounds of a LayerNorm's results from its input x (rows x_r), scale s, shift b and dL/dy
/// (rows dy_r), sigma_r the row's standard deviation and rho_r = ||x_r|| / sigma_r (at least
/// ||x_hat_r||; the centring rounds relative to |x_r|, so rho_r / sqrt(E) is the amplification of
/// the rounding by 1 / sigma_r):
///   out      ||y||      <= sqrt(sum_r (max|s| rho_r + ||b||)^2)
///   dx       ||dx_r||   <= 3 max|s| ||dy_r|| rho_r / (sigma_r sqrt(E))
///   dscale   ||dscale|| <= sum_r ||dy_r|| rho_r,   dshift: ||dshift|| <= sum_r ||dy_r||
struct TbNormScales {
  double out = 0, grad_x = 0, scale = 0, shift = 0;
};

template <typename Scalar, int Rank>
TbNormScales tb_norm_scales(const attn::Tensor<Scalar, Rank>& x, const attn::Tensor<Scalar, 1>& s,
                            const attn::Tensor<Scalar, 1>& b,
                            const attn::Tensor<Scalar, Rank>* dy) {
  const Index E = s.size(0), rows = x.numel() / E;
  double max_s = 0, norm_b = 0;
  for (Index j = 0; j < E; ++j) {
    max_s = std::max(max_s, std::abs(double(s.data()[j])));
    norm_b += double(b.data()[j]) * double(b.data()[j]);
  }
  norm_b = std::sqrt(norm_b);
  TbNormScales scales;
  double out2 = 0, gx2 = 0;
  for (Index r = 0; r < rows; ++r) {
    const Scalar* row = x.data() + r * E;
    double mean = 0, norm2 = 0;
    for (Index j = 0; j < E; ++j) mean += double(row[j]) / double(E);
    double var = 0;
    for (Index j = 0; j < E; ++j) {
      var += (double(row[j]) - mean) * (double(row[j]) - mean) / double(E);
      norm2 += double(row[j]) * double(row[j]);
    }
    const double sigma = std::sqrt(var + 1e-5), rho = std::sqrt(norm2) / sigma;
    out2 += (max_s * rho + norm_b) * (max_s * rho + norm_b);
    if (dy != nullptr) {
      double g = 0;
      for (Index j = 0; j < E; ++j) g += double(dy->data()[r * E + j]) * dy->data()[r * E + j];
      g = std::sqrt(g);
      const double gx = 3 * max_s * g * rho / (sigma * std::sqrt(double(E)));
      gx2 += gx * gx;
      scales.scale += g * rho;
      scales.shift += g;
    }
  }
  scales.out = std::sqrt(out2);
  scales.grad_x = std::sqrt(gx2);
  return scales;
}

TYPED_TEST(LayerNormTyped, StartsAsTheBooksWithItsNames) {
  using Scalar = TypeParam;
  attn::LayerNorm<Scalar> norm(7);
  EXPECT_EQ(norm.emb_dim(), 7);
  EXPECT_EQ(norm.eps(), static_cast<Scalar>(1e-5));
  const auto state = attn::state_dict(norm);
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state.at("scale").values, std::vector<Scalar>(7, Scalar(1)));
  EXPECT_EQ(state.at("shift").values, std::vector<Scalar>(7, Scalar(0)));
  EXPECT_EQ(attn::parameter_count(norm), 14);
}

TYPED_TEST(LayerNormTyped, ForwardAndBackwardMatchPyTorch) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("layer_norm");
  attn::LayerNorm<Scalar> norm(attn_test::metadata_int(io, "emb_dim"));
  attn::load_state_dict(norm, tb_entries<Scalar>(io, tb_prefix<Scalar>() + "state."));
  const auto x = tb_get<Scalar, 3>(io, "x");
  const auto R = tb_get<Scalar, 3>(io, "R");
  const auto scales = tb_norm_scales(x, norm.scale(), norm.shift(), &R);
  const double tol = tb_tolerance<Scalar>(norm.emb_dim());
  const auto expected = tb_get<Scalar, 3>(io, "out");
  EXPECT_TRUE(attn_test::close_normwise(norm.forward(x.view()), expected, scales.out, tol, "out"));

  typename attn::LayerNorm<Scalar>::Cache cache;
  const auto out = norm.forward(x.view(), cache);
  EXPECT_TRUE(attn_test::close_normwise(out, expected, scales.out, tol, "out (cache)"));
  attn::zero_grad(norm);
  const auto grad_x = norm.backward(cache, R.view());
  EXPECT_TRUE(attn_test::close_normwise(grad_x, tb_get<Scalar, 3>(io, "grad.x"), scales.grad_x, tol,
                                        "grad x"));
  EXPECT_TRUE(attn_test::close_normwise(norm.scale_grad(), tb_get<Scalar, 1>(io, "grad.scale"),
                                        scales.scale, tol, "grad scale"));
  EXPECT_TRUE(attn_test::close_normwise(norm.shift_grad(), tb_get<Scalar, 1>(io, "grad.shift"),
                                        scales.shift, tol, "grad shift"));

  // Backward accumulates: a second pass doubles the parameter gradients (exactly: x + x).
  const std::vector<double> once = attn_test::values_of(norm.scale_grad());
  norm.backward(cache, R.view());
  const std::vector<double> twice = attn_test::values_of(norm.scale_grad());
  for (std::size_t i = 0; i < once.size(); ++i) EXPECT_EQ(twice[i], 2 * once[i]);
}

TYPED_TEST(LayerNormTyped, ReadsStridedViewsAsPyTorchDoes) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("layer_norm");
  attn::LayerNorm<Scalar> norm(attn_test::metadata_int(io, "emb_dim"));
  attn::load_state_dict(norm, tb_entries<Scalar>(io, tb_prefix<Scalar>() + "state."));
  const auto x = tb_get<Scalar, 3>(io, "x");
  const auto R = tb_get<Scalar, 3>(io, "R");
  const auto scales = tb_norm_scales(x, norm.scale(), norm.shift(), &R);
  const double tol = tb_tolerance<Scalar>(norm.emb_dim());
  attn::Tensor<Scalar, 3> padded, transposed, grad_storage;
  for (const auto& view : {tb_padded_view(x, padded), tb_transposed_view(x, transposed)}) {
    ASSERT_FALSE(view.is_contiguous());
    typename attn::LayerNorm<Scalar>::Cache cache;
    EXPECT_TRUE(attn_test::close_normwise(norm.forward(view, cache), tb_get<Scalar, 3>(io, "out"),
                                          scales.out, tol, "out of a strided view"));
    const auto grad_x = norm.backward(cache, tb_padded_view(R, grad_storage));
    EXPECT_TRUE(attn_test::close_normwise(grad_x, tb_get<Scalar, 3>(io, "grad.x"), scales.grad_x,
                                          tol, "grad x from a strided dL/dy"));
  }
}

TEST(LayerNormBook, NormalisesTheBooksBatchToMeanZeroVarianceOne) {
  // Section 4.2: torch.manual_seed(123); batch_example = torch.randn(2, 5); LayerNorm(5), rank 2.
  const auto io = attn_test::load_io("layer_norm");
  const auto x = attn_test::fixture_tensor<float, 2>(io, "book.x");
  attn::LayerNorm<float> norm(5);
  const auto out = norm.forward(x.view());
  const auto scales = tb_norm_scales<float, 2>(x, norm.scale(), norm.shift(), nullptr);
  EXPECT_TRUE(attn_test::close_normwise(out, attn_test::fixture_tensor<float, 2>(io, "book.out"),
                                        scales.out, tb_tolerance<float>(5), "book out"));
  for (Index r = 0; r < 2; ++r) {
    double mean = 0, var = 0;
    for (Index j = 0; j < 5; ++j) mean += out(r, j) / 5.0;
    for (Index j = 0; j < 5; ++j) var += (out(r, j) - mean) * (out(r, j) - mean) / 5.0;
    // The book prints mean 0 (to -2.98e-08) and var 1 (to 1 - 5e-6 from eps = 1e-5 / var).
    EXPECT_NEAR(mean, 0.0, 1e-6);
    EXPECT_NEAR(var, 1.0, 1e-4);
  }
}

TEST(LayerNormErrors, RefusesABadSizeAndAWrongWidth) {
  ATTN_EXPECT_ERROR(attn::LayerNorm<float>(0), std::invalid_argument,
                    {"LayerNorm", "emb_dim (0) must be positive"});
  attn::LayerNorm<float> norm(4);
  const attn::Tensor<float, 3> x({1, 2, 5});
  ATTN_EXPECT_ERROR(norm.forward(x.view()), attn::ShapeError,
                    {"LayerNorm", "(1, 2, 5)", "emb_dim (4)"});
  typename attn::LayerNorm<float>::Cache cache;
  norm.forward(attn::Tensor<float, 3>({1, 2, 4}).view(), cache);
  ATTN_EXPECT_ERROR(norm.backward(cache, attn::Tensor<float, 3>({1, 3, 4}).view()),
                    attn::ShapeError, {"LayerNorm::backward", "3 rows", "normalised 2 rows"});
}

// ---- GELU --------------------------------------------------------------------------------------

/// m(x) = 0.5 (1 + |t|) + 0.5 |x| sqrt(2/pi) (1 + 3 * 0.044715 x^2) bounds |GELU'(x)| and how
/// much the derivative's rounding (of t = tanh(u) near +-1, in 1 - t^2) grows with |x|.
double tb_gelu_growth(double x) {
  const double c = std::sqrt(2 / 3.14159265358979323846);
  const double t = std::tanh(c * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + std::abs(t)) + 0.5 * std::abs(x) * c * (1 + 3 * 0.044715 * x * x);
}

/// |GELU(x)| <= |x|: ||out|| <= ||x||; ||dx|| <= ||dy * m(x)|| (tb_gelu_growth).
template <typename Scalar, int Rank>
double tb_gelu_grad_scale(const attn::Tensor<Scalar, Rank>& x,
                          const attn::Tensor<Scalar, Rank>& dy) {
  double sum = 0;
  for (Index i = 0; i < x.numel(); ++i) {
    const double term = double(dy.data()[i]) * tb_gelu_growth(double(x.data()[i]));
    sum += term * term;
  }
  return std::sqrt(sum);
}

TYPED_TEST(GeluTyped, ForwardAndBackwardMatchPyTorch) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("gelu");
  const auto x = tb_get<Scalar, 3>(io, "x");
  const auto R = tb_get<Scalar, 3>(io, "R");
  const attn::GELU<Scalar> gelu;
  const double tol = tb_tolerance<Scalar>(1);
  const auto out = gelu.forward(x.view());
  EXPECT_TRUE(attn_test::close_normwise(out, tb_get<Scalar, 3>(io, "out"), attn_test::frobenius(x),
                                        tol, "out"));
  EXPECT_EQ(out(0, 0, 0), Scalar(0));     // GELU(0) = 0
  EXPECT_EQ(out(0, 0, 1), Scalar(10));    // tanh saturates: GELU(10) = 10 in both precisions
  EXPECT_NEAR(out(0, 0, 2), 0.0, 1e-15);  // GELU(-10) = -10 (1 + tanh(-43.6)) / 2, 0 in float
  const auto grad_x = gelu.backward(x.view(), R.view());
  EXPECT_TRUE(attn_test::close_normwise(grad_x, tb_get<Scalar, 3>(io, "grad.x"),
                                        tb_gelu_grad_scale(x, R), tol, "grad x"));
  // A strided input reads the same values.
  attn::Tensor<Scalar, 3> storage;
  const auto view = tb_transposed_view(x, storage);
  EXPECT_TRUE(attn_test::close_normwise(gelu.forward(view), tb_get<Scalar, 3>(io, "out"),
                                        attn_test::frobenius(x), tol, "out of a strided view"));
  EXPECT_TRUE(attn_test::close_normwise(gelu.backward(view, R.view()),
                                        tb_get<Scalar, 3>(io, "grad.x"), tb_gelu_grad_scale(x, R),
                                        tol, "grad x of a strided view"));
}

TEST(GeluConstant, IsTheBooksSqrtTwoOverPiInEachPrecision) {
  // torch.sqrt(torch.tensor(2.0 / torch.pi)): float32 by default, float64 under
  // set_default_dtype(torch.float64), as python3-torch 1.13 prints them.
  EXPECT_EQ(attn::GELU<float>::sqrt_2_over_pi(), 0.7978845238685608f);
  EXPECT_EQ(attn::GELU<double>::sqrt_2_over_pi(), 0.7978845608028654);
}

TEST(GeluErrors, RefusesAGradientOfAnotherShape) {
  const attn::GELU<float> gelu;
  const attn::Tensor<float, 2> x({2, 3}), dy({3, 2});
  ATTN_EXPECT_ERROR(gelu.backward(x.view(), dy.view()), attn::ShapeError,
                    {"GELU::backward", "(3, 2)", "(2, 3)"});
}

// ---- FeedForward -------------------------------------------------------------------------------

/// Bounds of FeedForward's results, h = x W1^T + b1, a = GELU(h), out = a W2^T + b2, computed
/// in double from the fixture's x, dL/dout and the weights, with Frobenius norms for the
/// weights (they bound the spectral ones), N rows, m(h) from tb_gelu_growth:
///   out  <= ||W2|| ||h|| + sqrt(N) ||b2||   (|GELU(h)| <= |h|)
///   dh = (dy W2) GELU'(h):  ||dh|| <= ||(dy W2) m(h)||
///   dW2 <= ||dy|| ||h||, db2 <= sum_r ||dy_r||, dW1 <= ||dh|| ||x||, db1 <= sqrt(N) ||dh||,
///   dx <= ||dh|| ||W1||
struct TbFeedForwardScales {
  double out = 0, grad_x = 0, w1 = 0, b1 = 0, w2 = 0, b2 = 0;
};

template <typename Scalar>
attn_test::RowMatrixd tb_matrix(const Scalar* data, Index rows, Index cols) {
  attn_test::RowMatrixd m(rows, cols);
  for (Index i = 0; i < rows * cols; ++i) m.data()[i] = double(data[i]);
  return m;
}

template <typename Scalar>
TbFeedForwardScales tb_feed_forward_scales(attn::FeedForward<Scalar>& ff,
                                           const attn::Tensor<Scalar, 3>& x,
                                           const attn::Tensor<Scalar, 3>& dy) {
  const Index E = ff.emb_dim(), F = ff.hidden_dim(), N = x.numel() / E;
  const auto X = tb_matrix(x.data(), N, E), DY = tb_matrix(dy.data(), N, E);
  const auto W1 = tb_matrix(ff.layer0().weight().data(), F, E);
  const auto W2 = tb_matrix(ff.layer2().weight().data(), E, F);
  const Eigen::RowVectorXd b1 = tb_matrix(ff.layer0().bias().data(), 1, F);
  const double B2 = attn_test::frobenius(ff.layer2().bias());
  const attn_test::RowMatrixd H = (X * W1.transpose()).rowwise() + b1;
  attn_test::RowMatrixd DH = DY * W2;
  for (Index i = 0; i < DH.size(); ++i) DH.data()[i] *= tb_gelu_growth(H.data()[i]);
  const double sqrt_n = std::sqrt(double(N));
  TbFeedForwardScales s;
  s.out = W2.norm() * H.norm() + sqrt_n * B2;
  s.w2 = DY.norm() * H.norm();
  s.b2 = attn_test::sum_row_norms(dy);
  s.w1 = DH.norm() * X.norm();
  s.b1 = sqrt_n * DH.norm();
  s.grad_x = DH.norm() * W1.norm();
  return s;
}

TYPED_TEST(FeedForwardTyped, SeededLikePyTorchAndMatchesItsGradients) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("feed_forward");
  attn::FeedForward<Scalar> ff(attn_test::metadata_int(io, "emb_dim"),
                               attn::Generator(attn_test::metadata_int(io, "seed")));
  EXPECT_EQ(ff.hidden_dim(), 24);
  // Initial state: torch.manual_seed(13); FeedForward(cfg), in this precision (float64 drawn
  // under set_default_dtype). Each entry is its bound times a uniform, rounded by attn and by
  // PyTorch: within 4 eps of the tensor's size.
  const auto expected_state = tb_entries<Scalar>(io, tb_prefix<Scalar>() + "state.");
  const auto state = attn::state_dict(ff);
  ASSERT_EQ(state.size(), expected_state.size());
  for (const auto& [name, tensor] : expected_state) {
    ASSERT_EQ(state.count(name), 1u) << name;
    EXPECT_TRUE(attn_test::close_normwise(state.at(name).values, tensor.values,
                                          attn_test::frobenius(tensor.values),
                                          4 * attn_test::epsilon<Scalar>(), name));
  }
  const auto x = tb_get<Scalar, 3>(io, "x");
  const auto R = tb_get<Scalar, 3>(io, "R");
  const auto scales = tb_feed_forward_scales(ff, x, R);
  const double tol = tb_tolerance<Scalar>(ff.hidden_dim());
  EXPECT_TRUE(attn_test::close_normwise(ff.forward(x.view()), tb_get<Scalar, 3>(io, "out"),
                                        scales.out, tol, "out"));
  typename attn::FeedForward<Scalar>::Cache cache;
  attn::Tensor<Scalar, 3> padded;
  const auto out = ff.forward(tb_padded_view(x, padded), cache);  // a strided input
  EXPECT_TRUE(
      attn_test::close_normwise(out, tb_get<Scalar, 3>(io, "out"), scales.out, tol, "out (cache)"));
  attn::zero_grad(ff);
  const auto grad_x = ff.backward(cache, R.view());
  EXPECT_TRUE(attn_test::close_normwise(grad_x, tb_get<Scalar, 3>(io, "grad.x"), scales.grad_x, tol,
                                        "grad x"));
  const auto grads = attn::gradients(ff);
  const std::pair<const char*, double> pieces[] = {{"layers.0.weight", scales.w1},
                                                   {"layers.0.bias", scales.b1},
                                                   {"layers.2.weight", scales.w2},
                                                   {"layers.2.bias", scales.b2}};
  for (const auto& [name, scale] : pieces) {
    EXPECT_TRUE(attn_test::close_normwise(
        grads.at(name).values,
        tb_entries<Scalar>(io, tb_prefix<Scalar>() + "grad.").at(name).values, scale, tol, name));
  }
}

TEST(FeedForwardErrors, RefusesABadSizeAndAWrongWidth) {
  ATTN_EXPECT_ERROR(attn::FeedForward<float>(0), std::invalid_argument,
                    {"FeedForward", "emb_dim (0) must be positive"});
  const attn::FeedForward<float> ff(4);
  const attn::Tensor<float, 3> x({2, 3, 5});
  ATTN_EXPECT_ERROR(ff.forward(x.view()), attn::ShapeError, {"(2, 3, 5)", "in_features (4)"});
}

// ---- TransformerBlock --------------------------------------------------------------------------

attn::TransformerBlock<float>::Config tb_block_config(const attn::io::SafetensorsFile& io) {
  attn::TransformerBlock<float>::Config config;
  config.emb_dim = attn_test::metadata_int(io, "emb_dim");
  config.context_length = attn_test::metadata_int(io, "context_length");
  config.n_heads = attn_test::metadata_int(io, "n_heads");
  config.drop_rate = std::stod(io.metadata.at("drop_rate"));
  config.qkv_bias = io.metadata.at("qkv_bias") == "True";
  return config;
}

template <typename Scalar>
typename attn::TransformerBlock<Scalar>::Config tb_config_as(
    const attn::TransformerBlock<float>::Config& c) {
  return {c.emb_dim, c.context_length, c.n_heads, c.drop_rate, c.qkv_bias};
}

/// forward(x, cache) and backward(cache, R) of `block` against the fixture's `<mode>.` entries:
/// out, dL/dx and every parameter gradient, each normwise against the float64 reference's norm,
/// the key bias (zero in exact arithmetic) negligible against PyTorch's recorded term size.
template <typename Scalar>
void tb_check_block_against(attn::TransformerBlock<Scalar>& block,
                            const attn::io::SafetensorsFile& io, const std::string& mode,
                            const attn::TensorView<const Scalar, 3>& x) {
  const std::string p = tb_prefix<Scalar>() + mode + ".";
  const auto reference = tb_entries<double>(io, "f64." + mode + ".");  // the scales
  const double tol = tb_tolerance<Scalar>(4 * block.config().emb_dim);
  const auto R = attn_test::fixture_tensor<Scalar, 3>(io, p + "R");
  typename attn::TransformerBlock<Scalar>::Cache cache;
  attn::zero_grad(block);
  const auto out = block.forward(x, cache);
  EXPECT_TRUE(attn_test::close_normwise(out, attn_test::fixture_tensor<Scalar, 3>(io, p + "out"),
                                        attn_test::frobenius(reference.at("out").values), tol,
                                        mode + " out"));
  const auto grad_x = block.backward(cache, R.view());
  EXPECT_TRUE(attn_test::close_normwise(
      grad_x, attn_test::fixture_tensor<Scalar, 3>(io, p + "grad.x"),
      attn_test::frobenius(reference.at("grad.x").values), tol, mode + " grad x"));
  const auto expected = tb_entries<Scalar>(io, p + "grad.");
  Index compared = 0;
  for (const auto& [name, gradient] : attn::gradients(block)) {
    ASSERT_EQ(expected.count(name), 1u) << "PyTorch has no gradient for " << name;
    const auto& theirs = expected.at(name).values;
    const std::string what = mode + " grad " + name;
    const auto vanishing = reference.find("scale." + name);
    if (vanishing != reference.end()) {
      const double scale = vanishing->second.values.at(0);
      EXPECT_TRUE(attn_test::negligible(gradient.values, scale, tol, what + " (attn)"));
      EXPECT_TRUE(attn_test::negligible(theirs, scale, tol, what + " (PyTorch)"));
    } else {
      EXPECT_TRUE(attn_test::close_normwise(
          gradient.values, theirs, attn_test::frobenius(reference.at("grad." + name).values), tol,
          what));
    }
    ++compared;
  }
  EXPECT_EQ(compared + 1, static_cast<Index>(expected.size()));  // + PyTorch's grad.x
}

TYPED_TEST(TransformerBlockTyped, SeededLikePyTorchWithTheBooksNames) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("transformer_block");
  const attn::TransformerBlock<Scalar> block(tb_config_as<Scalar>(tb_block_config(io)),
                                             attn::Generator(attn_test::metadata_int(io, "seed")));
  const auto expected = tb_entries<Scalar>(io, tb_prefix<Scalar>() + "state.");
  const auto state = attn::state_dict(block);
  ASSERT_EQ(state.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_EQ(state.count(name), 1u) << "no entry " << name;
    EXPECT_EQ(state.at(name).shape, tensor.shape) << name;
    // Uniform draws times their bound (the norms' ones and zeros and the mask exactly).
    EXPECT_TRUE(attn_test::close_normwise(state.at(name).values, tensor.values,
                                          attn_test::frobenius(tensor.values),
                                          4 * attn_test::epsilon<Scalar>(), name));
  }
  EXPECT_EQ(state.count("att.mask"), 1u);
  EXPECT_EQ(state.count("ff.layers.2.bias"), 1u);
  EXPECT_EQ(state.count("norm2.shift"), 1u);
}

TYPED_TEST(TransformerBlockTyped, EvalForwardAndBackwardMatchPyTorch) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("transformer_block");
  attn::TransformerBlock<Scalar> block(tb_config_as<Scalar>(tb_block_config(io)),
                                       attn::Generator(attn_test::metadata_int(io, "seed")));
  block.eval();
  const auto x = tb_get<Scalar, 3>(io, "eval.x");
  tb_check_block_against(block, io, "eval", x.view());
  // The same through strided inputs.
  attn::Tensor<Scalar, 3> padded, transposed;
  tb_check_block_against(block, io, "eval", tb_padded_view(x, padded));
  tb_check_block_against(block, io, "eval", tb_transposed_view(x, transposed));
}

TYPED_TEST(TransformerBlockTyped, TrainingDropsWhatPyTorchDrops) {
  // torch.manual_seed(17); block = TransformerBlock(cfg); block(x) in training mode: the
  // attention weights' masks, then the two shortcut branches', from the generator as the
  // construction left it. A different mask moves the output by O(1), far above the tolerance.
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("transformer_block");
  attn::TransformerBlock<Scalar> block(tb_config_as<Scalar>(tb_block_config(io)),
                                       attn::Generator(attn_test::metadata_int(io, "seed")));
  ASSERT_TRUE(block.is_training());
  const auto x = tb_get<Scalar, 3>(io, "train.x");
  tb_check_block_against(block, io, "train", x.view());
  // The masks differ from eval mode's absence of masks: the outputs differ by far more than
  // rounding (the fixture's train and eval outputs are PyTorch's).
  const auto train_out = tb_get<Scalar, 3>(io, "train.out");
  const auto eval_out = tb_get<Scalar, 3>(io, "eval.out");
  EXPECT_FALSE(
      attn_test::close_normwise(train_out, eval_out, attn_test::frobenius(eval_out), 0.01));
}

TYPED_TEST(TransformerBlockTyped, KVCacheDecodeEqualsTheFullForward) {
  using Scalar = TypeParam;
  const auto io = attn_test::load_io("transformer_block");
  attn::TransformerBlock<Scalar> block(tb_config_as<Scalar>(tb_block_config(io)),
                                       attn::Generator(attn_test::metadata_int(io, "seed")));
  block.eval();
  const auto x = tb_get<Scalar, 3>(io, "eval.x");
  const auto full = block.forward(x.view());
  const double tol = tb_tolerance<Scalar>(4 * block.config().emb_dim);
  for (const Index prefill : {Index{1}, Index{3}, x.size(1)}) {
    auto cache = block.make_kv_cache(x.size(0));
    EXPECT_EQ(cache.capacity(), block.config().context_length);
    attn::Tensor<Scalar, 3> out(full.shape());
    for (Index start = 0; start < x.size(1);) {
      const Index n = start == 0 ? prefill : 1;
      const auto chunk = block.forward(attn::slice(x.view(), 1, start, start + n), cache);
      for (Index b = 0; b < x.size(0); ++b) {
        for (Index t = 0; t < n; ++t) {
          for (Index c = 0; c < x.size(2); ++c) out(b, start + t, c) = chunk(b, t, c);
        }
      }
      start += n;
    }
    EXPECT_EQ(cache.size(), x.size(1));
    EXPECT_TRUE(attn_test::close_normwise(out, full, attn_test::frobenius(full), tol,
                                          "prefill " + std::to_string(prefill) + ", then 1 by 1"));
  }
}

TEST(TransformerBlockErrors, RefusesBadConfigsInputsAndATrainingCache) {
  using Block = attn::TransformerBlock<float>;
  ATTN_EXPECT_ERROR(Block({10, 8, 4, 0.1, false}), std::invalid_argument,
                    {"TransformerBlock", "emb_dim (10) must be divisible by n_heads (4)"});
  ATTN_EXPECT_ERROR(Block({8, 8, 2, 1.0, false}), std::invalid_argument,
                    {"TransformerBlock", "drop_rate (1)", "[0, 1)"});
  ATTN_EXPECT_ERROR(Block({8, 0, 2, 0.1, false}), std::invalid_argument,
                    {"context_length (0) must be positive"});
  Block block({8, 4, 2, 0.1, false});
  ATTN_EXPECT_ERROR(block.forward(attn::Tensor<float, 3>({1, 3, 6}).view()), attn::ShapeError,
                    {"TransformerBlock", "(1, 3, 6)", "emb_dim (8)"});
  ATTN_EXPECT_ERROR(block.forward(attn::Tensor<float, 3>({1, 5, 8}).view()), attn::ShapeError,
                    {"TransformerBlock", "5 tokens", "context_length is 4"});
  auto cache = block.make_kv_cache(1);
  ATTN_EXPECT_ERROR(block.forward(attn::Tensor<float, 3>({1, 2, 8}).view(), cache),
                    std::invalid_argument, {"training mode", "drop_rate 0.1", "eval()"});
  EXPECT_EQ(cache.size(), 0);
  block.eval();
  block.forward(attn::Tensor<float, 3>({1, 4, 8}).view(), cache);
  ATTN_EXPECT_ERROR(block.forward(attn::Tensor<float, 3>({1, 1, 8}).view(), cache),
                    std::out_of_range, {"holds 4 of 4 positions"});
  typename Block::Cache training;
  block.forward(attn::Tensor<float, 3>({1, 2, 8}).view(), training);
  ATTN_EXPECT_ERROR(block.backward(training, attn::Tensor<float, 3>({1, 3, 8}).view()),
                    attn::ShapeError, {"TransformerBlock::backward", "(1, 3, 8)", "(1, 2, 8)"});
}

}  // namespace
