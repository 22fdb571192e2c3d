// The checks every layer faces against its PyTorch fixtures, written once:
//  1. built from Generator(seed), the layer holds exactly the weights PyTorch initialised after
//     torch.manual_seed(seed) (PyTorch-compatible initialisation);
//  2. loaded from the fixture's state_dict (saved by PyTorch as safetensors), in eval mode, its
//     forward matches PyTorch's output;
//  3. its backward matches PyTorch autograd's gradients.
// Every comparison is normwise against a problem scale (support/normwise.hpp) computed by
// layer_scales from the layer's state_dict, its input and the output gradient; the gradient of
// every key bias is zero in exact arithmetic and is checked as negligible, in attn and in
// PyTorch alike.
#ifndef ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP
#define ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "support/attention_bounds.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace attn_test {

// ---- Problem scales of a layer -----------------------------------------------------------------

/// A part of a parameter's gradient with its problem scale: the whole tensor, or the query, key or
/// value rows of a stacked qkv projection. `vanishing`: zero in exact arithmetic.
struct GradientPiece {
  std::string name;
  attn::Index first = 0, count = 0;
  double scale = 0;
  bool vanishing = false;
};

/// Bounds on the size of a layer's output and gradients (Frobenius norms), and the tolerance's
/// ingredients: the largest |logit| and the longest reduction.
struct LayerScales {
  double out = 0, grad_x = 0;
  std::vector<GradientPiece> gradients;
  double logits = 0;
  attn::Index length = 0;

  /// rounding_tolerance with c = 8: two implementations (attn and PyTorch, or two of attn's
  /// layers) each round, through up to three stages (projection, attention, output projection).
  template <typename Scalar>
  double tolerance() const {
    return rounding_tolerance<Scalar>(logits, length, 8);
  }

  /// The scale of the (first piece of the) gradient of `parameter`.
  double gradient(const std::string& parameter) const {
    for (const auto& piece : gradients) {
      if (piece.name == parameter) return piece.scale;
    }
    throw std::out_of_range("no gradient scale for '" + parameter + "'");
  }
};

namespace detail {

/// The largest singular value of m (0 for an empty m); defined in fixtures.cpp.
double spectral_norm(const RowMatrixd& m);

template <typename Scalar, int Rank>
RowMatrixd rows_of(const attn::Tensor<Scalar, Rank>& t) {
  const attn::Index cols = t.size(Rank - 1);
  const attn::Index rows = cols == 0 ? 0 : t.numel() / cols;
  RowMatrixd m(rows, cols);
  for (attn::Index i = 0; i < t.numel(); ++i) m.data()[i] = static_cast<double>(t.data()[i]);
  return m;
}

/// One attention (a set of heads sharing projections) of a layer, read from its state_dict:
/// projections y = x W^T + b with W (C, d_in), names and element offsets of their gradients.
struct Attention {
  RowMatrixd weight[3];
  Eigen::VectorXd bias[3];
  std::string weight_name[3], bias_name[3];
  attn::Index weight_first[3] = {0, 0, 0}, bias_first[3] = {0, 0, 0};
  bool has_bias = false;
  attn::Index heads = 1, first_out_col = 0;
  std::string out_proj;  // prefix of the output projection, or empty
};

}  // namespace detail

namespace detail {

/// layer_scales on double matrices: x and grad_out as (B * T, features) rows, B sequences of T
/// tokens; defined in fixtures.cpp, so its Eigen products are compiled once for the suite.
LayerScales layer_scales_of(const attn::StateDict<double>& state, const RowMatrixd& x,
                            const RowMatrixd* grad_out, attn::Index B, attn::Index T,
                            attn::Index num_heads, double dropout);

}  // namespace detail

/// Problem scales of a layer of the ladder (Linear or any attention rung), read from its
/// state_dict: `x` its input ((T, d_in) or (B, T, d_in)), `grad_out` the gradient of its output
/// (null for a forward alone), `num_heads` for MultiHeadAttention and the combined-qkv variant.
/// For an attention with projections Wq, Wk, Wv (bias bq, bk, bv), softmax over head_dim-wide
/// heads and an optional output projection Wo, bo, the bounds are attention_bounds.hpp's, with
/// q = x Wq^T + bq (likewise k, v) and do = R Wo (or R), computed here in double, and:
///   projection weight   dW = dy^T x:  ||dW||_F <= min(||dy||_F ||x||_2, sum_n |dy_n| max_n |x_n|)
///   projection bias     db = sum_n dy_n: |db| <= sum_n |dy_n|
///   input               dx = sum dy W: ||dx||_F <= sum ||dy||_F ||W||_2
///   output projection   dWo = R^T c:  ||dWo||_F <= ||R||_2 ||c||_F, |dbo| <= sum_n |R_n|,
///                       ||out||_F <= ||Wo||_2 ||c||_F + sqrt(N) |bo|   (c the context)
/// The key bias's gradient is zero in exact arithmetic (a key bias adds q_i . bk to every logit of
/// row i, and softmax ignores that), so it is a vanishing piece with dk's bound as its scale.
/// Grouped-query attention (W_key and W_value with fewer rows than W_query, kv_heads = rows /
/// head_dim, read from the state_dict) sums the bounds of the query heads sharing a kv head; an
/// out_proj without a bias has no bias term. The bounds hold for any mask (a sliding window
/// too), and RoPE changes none of them: it rotates pairs of coordinates within a head, which
/// keeps the norm of every query, key and gradient row, so the unrotated projections serve. (But
/// with RoPE a key bias is rotated by each key's own angle, so its gradient is no longer zero:
/// these scales do not fit a RoPE layer with qkv_bias, and no fixture has one.)
template <typename Scalar, int Rank>
LayerScales layer_scales(const attn::StateDict<Scalar>& state, const attn::Tensor<Scalar, Rank>& x,
                         const std::enable_if_t<true, attn::Tensor<Scalar, Rank>>* grad_out,
                         attn::Index num_heads = 1, double dropout = 0) {
  static_assert(Rank == 2 || Rank == 3, "layer_scales takes (T, d_in) or (B, T, d_in) inputs");
  attn::StateDict<double> state_d;
  for (const auto& [name, entry] : state) {
    state_d[name] = {entry.shape, std::vector<double>(entry.values.begin(), entry.values.end())};
  }
  const RowMatrixd R = grad_out != nullptr ? detail::rows_of(*grad_out) : RowMatrixd();
  return detail::layer_scales_of(state_d, detail::rows_of(x), grad_out != nullptr ? &R : nullptr,
                                 Rank == 3 ? x.size(0) : 1, x.size(Rank - 2), num_heads, dropout);
}

// ---- The checks --------------------------------------------------------------------------------

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
    // Each entry is its init range times a uniform draw (bound (2u - 1), or u for torch.rand),
    // rounded once or twice in float, by each of attn and PyTorch: within 4 eps of the tensor's
    // own size, which is nonzero by construction (a different draw or bound is off by O(1)).
    const auto result = close_normwise(found->second.values, tensor.values,
                                       frobenius(tensor.values), 4 * epsilon<float>(), name);
    if (!result) return result;
  }
  return ::testing::AssertionSuccess();
}

inline attn::Index num_heads_of(const attn::io::SafetensorsFile& io) {
  return io.metadata.count("num_heads") != 0 ? metadata_int(io, "num_heads") : 1;
}

/// The case's sliding window (metadata "window"), 0 without one.
inline attn::Index window_of(const attn::io::SafetensorsFile& io) {
  return io.metadata.count("window") != 0 ? metadata_int(io, "window") : 0;
}

/// With a sliding window of 1 each query sees its own key alone, so every weight is exactly 1 and
/// dS = 0: the gradients of the query and key projections (weights and biases) are zero in exact
/// arithmetic. Marks those pieces vanishing; their scales stay the bounds of the terms that cancel.
inline void mark_single_key_window(LayerScales& scales) {
  for (auto& piece : scales.gradients) {
    if (piece.name.find("W_query.") != std::string::npos ||
        piece.name.find("W_key.") != std::string::npos) {
      piece.vanishing = true;
    }
  }
}

/// True for the attention rungs, which return their attention weights.
template <typename Layer, int Rank, typename = void>
inline constexpr bool has_attention_weights = false;
template <typename Layer, int Rank>
inline constexpr bool has_attention_weights<
    Layer, Rank,
    std::void_t<decltype(std::declval<const Layer&>().forward_with_weights(
        std::declval<attn::TensorView<const typename Layer::Scalar, Rank>>()))>> = true;

/// forward_with_weights against PyTorch's `attn_weights` (fixture entry "weights"): the context
/// matches PyTorch's output as forward's does, the weights match normwise (a row of weights has
/// norm at most 1, so the scale is sqrt(rows)), and every weight PyTorch gives as exactly 0
/// (masked) is exactly 0 here too, whatever the compile flags.
template <typename Layer, int Rank>
void check_weights(const Layer& layer, const attn::Tensor<float, Rank>& x,
                   const attn::Tensor<float, Rank>& expected_out,
                   const attn::io::SafetensorsFile& io, const LayerScales& scales) {
  const auto [context, weights] = layer.forward_with_weights(x.view());
  constexpr int WeightsRank = std::decay_t<decltype(weights)>::rank;
  const auto expected = fixture_tensor<float, WeightsRank>(io, "weights");
  EXPECT_TRUE(
      close_normwise(context, expected_out, scales.out, scales.tolerance<float>(), "context"));
  const double rows = static_cast<double>(expected.numel() / expected.size(WeightsRank - 1));
  EXPECT_TRUE(close_normwise(weights, expected, std::sqrt(rows), scales.tolerance<float>(),
                             "attention weights"));
  attn::Index zeros = 0, nonzero_here = 0;
  for (attn::Index i = 0; i < expected.numel() && weights.numel() == expected.numel(); ++i) {
    if (expected.data()[i] != 0.0f) continue;
    ++zeros;
    if (weights.data()[i] != 0.0f) ++nonzero_here;
  }
  EXPECT_EQ(nonzero_here, 0) << "of " << zeros << " weights PyTorch gives as exactly 0";
}

/// Runs the first two checks for one case. `make(file, generator)` builds the layer from the
/// case's metadata; `Rank` is the rank of the layer's input and output.
template <int Rank, typename Make>
void check_layer_fixture(const std::string& name, Make&& make) {
  SCOPED_TRACE(name);
  const auto io = load_io(name);
  const auto state = attn::io::to_state_dict<float>(read_fixture(name + ".safetensors"));
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
  const LayerScales scales = layer_scales(state, x, nullptr, num_heads_of(io));
  EXPECT_TRUE(close_normwise(out, expected, scales.out, scales.tolerance<float>(), "out"));
  if constexpr (has_attention_weights<decltype(loaded), Rank>) {
    check_weights(loaded, x, expected, io, scales);
  }
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

/// The training forward check_layer_gradients runs by default: layer.forward(x, cache).
struct PlainTrainingForward {
  template <typename Layer, typename X, typename Cache>
  auto operator()(const Layer& layer, const X& x, Cache& cache,
                  const attn::io::SafetensorsFile& /*io*/) const {
    return layer.forward(x.view(), cache);
  }
};

/// Backward against PyTorch autograd: the layer loaded from the fixture runs forward with a
/// cache (`forward(layer, x, cache, io)`, by default layer.forward(x, cache)), then backward with
/// dL/dout = R (loss = sum(out * R)); out, dL/dx and every parameter's gradient must match the
/// fixture's normwise against layer_scales' bounds, the key biases' gradients (zero in exact
/// arithmetic) must be negligible in attn and in PyTorch.
template <typename Scalar, int Rank, typename Make, typename Forward = PlainTrainingForward>
void check_layer_gradients(const std::string& name, Make&& make, Forward&& forward = {}) {
  SCOPED_TRACE(name);
  const bool is_double = std::is_same_v<Scalar, double>;
  const auto io = load_io(name);
  const auto tensors = prefixed<Scalar>(io, is_double ? "f64." : "");
  const auto state = is_double
                         ? prefixed<Scalar>(io, "f64.state.")
                         : attn::io::to_state_dict<Scalar>(read_fixture(name + ".safetensors"));
  attn::Generator generator(1);
  auto layer = make(io, generator);
  attn::load_state_dict(layer, state);
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
  LayerScales scales = layer_scales(state, x, &R, num_heads_of(io));
  if (window_of(io) == 1) mark_single_key_window(scales);
  const double tolerance = scales.tolerance<Scalar>();
  typename decltype(layer)::Cache cache;
  const auto out = forward(layer, x, cache, io);
  EXPECT_TRUE(close_normwise(out, as_tensor("out"), scales.out, tolerance, "out"));
  const auto grad_x = layer.backward(cache, R.view());
  EXPECT_TRUE(close_normwise(grad_x, as_tensor("grad.x"), scales.grad_x, tolerance, "grad x"));
  const auto grads = attn::gradients(layer);
  std::map<std::string, attn::Index> checked;
  for (const auto& piece : scales.gradients) {
    ASSERT_EQ(grads.count(piece.name), 1u) << "no gradient for " << piece.name;
    ASSERT_EQ(tensors.count("grad." + piece.name), 1u) << "PyTorch has no " << piece.name;
    const auto slice = [&](const std::vector<Scalar>& values) {
      return std::vector<Scalar>(values.begin() + piece.first,
                                 values.begin() + piece.first + piece.count);
    };
    const auto ours = slice(grads.at(piece.name).values);
    const auto theirs = slice(tensors.at("grad." + piece.name).values);
    const std::string what = piece.name + "[" + std::to_string(piece.first) + ", " +
                             std::to_string(piece.first + piece.count) + ")";
    if (piece.vanishing) {
      // The key bias (and with a window of 1 the query and key projections): zero in exact
      // arithmetic, so attn's and PyTorch's are both rounding noise;
      // each must be small against the key gradient's problem scale.
      EXPECT_TRUE(negligible(ours, piece.scale, tolerance, what + " (attn)"));
      EXPECT_TRUE(negligible(theirs, piece.scale, tolerance, what + " (PyTorch)"));
    } else {
      EXPECT_TRUE(close_normwise(ours, theirs, piece.scale, tolerance, what));
    }
    checked[piece.name] += piece.count;
  }
  for (const auto& [parameter, gradient] : grads) {
    EXPECT_EQ(checked[parameter], static_cast<attn::Index>(gradient.values.size()))
        << "every entry of every parameter gradient is compared: " << parameter;
  }
  for (const auto& [key, tensor] : tensors) {
    if (key.rfind("grad.", 0) != 0 || key == "grad.x") continue;
    EXPECT_EQ(checked.count(key.substr(5)), 1u) << "PyTorch's " << key << " is compared";
  }
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_LAYER_FIXTURE_HPP
