// attn/layers/linear.hpp: Linear, y = x W^T + b, PyTorch's nn.Linear: the projection every
// trainable rung of the ladder is built from.
#ifndef ATTN_LAYERS_LINEAR_HPP
#define ATTN_LAYERS_LINEAR_HPP

#include <cmath>
#include <string>

#include "attn/config.hpp"
#include "attn/detail/gemm.hpp"
#include "attn/detail/validate.hpp"
#include "attn/layers/state_dict.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// A fully connected layer with PyTorch's layout and initialisation.
///
/// `weight` is (out_features, in_features), as nn.Linear stores it, so a PyTorch state_dict
/// loads unchanged. Initialisation matches nn.Linear's: weight, then bias, each drawn
/// U(-1/sqrt(in_features), 1/sqrt(in_features)) in row-major order from the generator.
template <typename ScalarType>
class Linear {
 public:
  using Scalar = ScalarType;

  /// Initialises from `generator` (a fresh Generator with PyTorch's default seed if omitted).
  /// @throws std::invalid_argument if a feature count is not positive.
  Linear(Index in_features, Index out_features, bool bias = true,
         Generator&& generator = Generator())
      : Linear(in_features, out_features, bias, static_cast<Generator&>(generator)) {}

  Linear(Index in_features, Index out_features, bool bias, Generator& generator)
      : Linear(in_features, out_features, bias, ZeroInit{}) {
    reset_parameters(generator);
  }

  /// A layer with all-zero parameters, for callers that initialise or load them themselves.
  static Linear zeros(Index in_features, Index out_features, bool bias = true) {
    return Linear(in_features, out_features, bias, ZeroInit{});
  }

  /// Redraws weight, then bias, from U(-1/sqrt(in_features), 1/sqrt(in_features)), as
  /// nn.Linear.reset_parameters does.
  void reset_parameters(Generator& generator) {
    const Scalar bound = init_bound(in_features_);
    for (Index i = 0; i < weight_.numel(); ++i) {
      weight_.data()[i] = generator.uniform<Scalar>(-bound, bound);
    }
    for (Index i = 0; i < bias_.numel(); ++i) {
      bias_.data()[i] = generator.uniform<Scalar>(-bound, bound);
    }
  }

  /// nn.Linear's initialisation bound, 1 / sqrt(in_features).
  static Scalar init_bound(Index in_features) {
    return Scalar(1) / std::sqrt(static_cast<Scalar>(in_features));
  }

  /// Training/eval mode, as nn.Module has it. This layer behaves the same in both.
  void train(bool training = true) { training_ = training; }
  void eval() { training_ = false; }
  bool is_training() const { return training_; }

  Index in_features() const { return in_features_; }
  Index out_features() const { return out_features_; }
  bool has_bias() const { return has_bias_; }
  Tensor<Scalar, 2>& weight() { return weight_; }
  const Tensor<Scalar, 2>& weight() const { return weight_; }
  Tensor<Scalar, 1>& bias() { return bias_; }
  const Tensor<Scalar, 1>& bias() const { return bias_; }

  /// y = x W^T + b over the last dimension.
  /// @param x (..., in_features); each (rows, in_features) block needs unit-stride columns.
  /// @param y (..., out_features), same leading shape, written.
  /// @throws ShapeError if the feature counts or leading shapes disagree.
  template <typename T, int Rank>
  void forward_into(const TensorView<T, Rank>& x, const TensorView<Scalar, Rank>& y) const {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "Linear: input and layer must share one element type.");
    detail::require_features("Linear", x.shape(), in_features_, "in_features");
    Shape<Rank> expected = x.shape();
    expected[Rank - 1] = out_features_;
    if (y.shape() != expected) {
      throw ShapeError(detail::concat("Linear: output has shape ", to_string(y.shape()),
                                      " but must be ", to_string(expected)));
    }
    for_each_row_block(x, y, [&](auto X, auto Y) {
      // Y = X W^T: W is (out, in) row-major, the "transposed B" layout of detail::gemm.
      detail::parallel_gemm(false, true, X.rows(), out_features_, in_features_, Scalar(1), X.data(),
                            X.outerStride(), weight_.data(), in_features_, Scalar(0), Y.data(),
                            Y.outerStride());
      if (has_bias_) Y.rowwise() += as_vector(bias_.view()).transpose();
    });
  }

  /// y = x W^T + b: returns a new (..., out_features) tensor.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> forward(const TensorView<T, Rank>& x) const {
    Shape<Rank> shape = x.shape();
    shape[Rank - 1] = out_features_;
    auto y = Tensor<Scalar, Rank>::uninitialized(shape);  // forward_into writes every element
    forward_into(x, y.view());
    return y;
  }

  /// Backward of forward(x): accumulates (+=) dL/dweight = dy^T x and dL/dbias = sum of dy
  /// over rows into the gradients, and returns dL/dx = dy W. Linear keeps nothing from the
  /// forward: pass the same x.
  /// @param x      (..., in_features), the forward's input.
  /// @param grad_y (..., out_features), dL/dy.
  /// @throws ShapeError if the shapes do not match the forward's.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> backward(const TensorView<T, Rank>& x,
                                const detail::ConstView<Scalar, Rank>& grad_y) {
    Shape<Rank> y_shape = x.shape();
    y_shape[Rank - 1] = out_features_;
    detail::require_features("Linear::backward", x.shape(), in_features_, "in_features");
    if (grad_y.shape() != y_shape) {
      throw ShapeError(detail::concat("Linear::backward: grad_y has shape ",
                                      to_string(grad_y.shape()), " but must be ",
                                      to_string(y_shape)));
    }
    // Work on contiguous (rows, features) matrices; inputs that already are cost no copy.
    const Tensor<Scalar, Rank> xc = contiguous(x), dyc = contiguous(grad_y);
    const Index rows = x.numel() / in_features_;
    const Scalar* X = xc.numel() == x.numel() && xc.numel() > 0 ? xc.data() : x.data();
    const Scalar* dY =
        dyc.numel() == grad_y.numel() && dyc.numel() > 0 ? dyc.data() : grad_y.data();
    auto grad_x = Tensor<Scalar, Rank>::uninitialized(x.shape());
    if (rows == 0) return grad_x;
    // y = x W^T + b   ->   dW += dy^T x,  db += rowsum(dy),  dx = dy W
    detail::parallel_gemm(true, false, out_features_, in_features_, rows, Scalar(1), dY,
                          out_features_, X, in_features_, Scalar(1), weight_grad_.data(),
                          in_features_);
    if (has_bias_) {
      as_vector(bias_grad_.view()) +=
          Eigen::Map<const RowMatrix<Scalar>>(dY, rows, out_features_).colwise().sum().transpose();
    }
    detail::parallel_gemm(false, false, rows, in_features_, out_features_, Scalar(1), dY,
                          out_features_, weight_.data(), in_features_, Scalar(0), grad_x.data(),
                          in_features_);
    return grad_x;
  }

  Tensor<Scalar, 2>& weight_grad() { return weight_grad_; }
  Tensor<Scalar, 1>& bias_grad() { return bias_grad_; }

  /// Entries "<prefix>weight" (out, in) and, with bias, "<prefix>bias" (out), with gradients.
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    visit(StateEntry<Scalar>{prefix + "weight",
                             {out_features_, in_features_},
                             weight_.data(),
                             StateEntry<Scalar>::Kind::parameter,
                             weight_grad_.data()});
    if (has_bias_) {
      visit(StateEntry<Scalar>{prefix + "bias",
                               {out_features_},
                               bias_.data(),
                               StateEntry<Scalar>::Kind::parameter,
                               bias_grad_.data()});
    }
  }

 private:
  struct ZeroInit {};
  Linear(Index in_features, Index out_features, bool bias, ZeroInit)
      : in_features_(validated(in_features, "in_features")),
        out_features_(validated(out_features, "out_features")),
        has_bias_(bias),
        weight_({out_features, in_features}),
        bias_({bias ? out_features : 0}),
        weight_grad_(weight_.shape()),
        bias_grad_(bias_.shape()) {}

  // An empty tensor when the view is already contiguous (use the view), else a contiguous copy.
  template <typename T, int Rank>
  static Tensor<Scalar, Rank> contiguous(const TensorView<T, Rank>& view) {
    if (view.is_contiguous()) return Tensor<Scalar, Rank>();
    return Tensor<Scalar, Rank>(TensorView<const Scalar, Rank>(view));
  }

  static Index validated(Index features, const char* name) {
    detail::require_positive("Linear", name, features);
    return features;
  }

  // Runs `body(X, Y)` on Eigen maps of matching (rows, features) blocks: one GEMM when the
  // leading dims of both views collapse into rows, else one per leading position.
  template <typename T, int Rank, typename Body>
  static void for_each_row_block(const TensorView<T, Rank>& x, const TensorView<Scalar, Rank>& y,
                                 Body&& body) {
    if constexpr (Rank == 1) {
      const TensorView<T, 2> x2(x.data(), {1, x.shape()[0]}, {x.shape()[0], x.strides()[0]});
      const TensorView<Scalar, 2> y2(y.data(), {1, y.shape()[0]}, {y.shape()[0], y.strides()[0]});
      body(as_matrix(x2), as_matrix(y2));
    } else if constexpr (Rank == 2) {
      body(as_matrix(x), as_matrix(y));
    } else if (rows_collapse(x) && rows_collapse(y)) {
      const Index rows = x.numel() / x.shape()[Rank - 1];
      const TensorView<T, 2> x2(x.data(), {rows, x.shape()[Rank - 1]},
                                {x.strides()[Rank - 2], x.strides()[Rank - 1]});
      const TensorView<Scalar, 2> y2(y.data(), {rows, y.shape()[Rank - 1]},
                                     {y.strides()[Rank - 2], y.strides()[Rank - 1]});
      body(as_matrix(x2), as_matrix(y2));
    } else {
      for (Index i = 0; i < x.shape()[0]; ++i) {
        for_each_row_block(select(x, 0, i), select(y, 0, i), body);
      }
    }
  }

  // True when dims 0..Rank-2 are evenly spaced rows, so they merge into one row dimension.
  template <typename T, int Rank>
  static bool rows_collapse(const TensorView<T, Rank>& view) {
    for (int d = 0; d + 2 < Rank; ++d) {
      if (view.shape()[d] != 1 &&
          view.strides()[d] != view.strides()[d + 1] * view.shape()[d + 1]) {
        return false;
      }
    }
    return true;
  }

  Index in_features_;
  Index out_features_;
  bool has_bias_;
  Tensor<Scalar, 2> weight_;
  Tensor<Scalar, 1> bias_;
  Tensor<Scalar, 2> weight_grad_;
  Tensor<Scalar, 1> bias_grad_;
  bool training_ = true;  // PyTorch modules start in training mode
};

}  // namespace attn

#endif  // ATTN_LAYERS_LINEAR_HPP
