// attn/layers/linear.hpp: Linear, y = x W^T + b, PyTorch's nn.Linear: the projection every
// trainable rung of the ladder is built from.
#ifndef ATTN_LAYERS_LINEAR_HPP
#define ATTN_LAYERS_LINEAR_HPP

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

#include "attn/autocast.hpp"
#include "attn/config.hpp"
#include "attn/kernels/bfloat16_matrix.hpp"
#include "attn/kernels/gemm.hpp"
#include "attn/layers/detail/stored_weight.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/gradient.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"
#include "attn/threads.hpp"

namespace attn {

/// A fully connected layer with PyTorch's layout and initialisation.
///
/// `weight` is (out_features, in_features), as nn.Linear stores it, so a PyTorch state_dict
/// loads unchanged. Initialisation matches nn.Linear's: weight, then bias, each drawn
/// U(-1/sqrt(in_features), 1/sqrt(in_features)) in row-major order from the generator.
///
/// Products: float (or double) throughout by default; under Autocast(Compute::bfloat16)
/// (attn/autocast.hpp) input and weight are rounded to bfloat16 and multiplied with float sums,
/// in forward and backward. WeightFormat::bfloat16 keeps the weight in 2 bytes only.
template <typename ScalarType>
class Linear : public StateVisitable<Linear<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// Initialises from `generator` (a fresh Generator with PyTorch's default seed if omitted),
  /// storing the weight as `format`: a bfloat16 weight is rounded row by row as it is drawn,
  /// never held in Scalar (a GPT-2 head: 77 MB instead of 154 + 77 at once).
  /// @throws std::invalid_argument if a feature count is not positive.
  Linear(Index in_features, Index out_features, bool bias = true,
         GeneratorRef generator = Generator(), WeightFormat format = WeightFormat::scalar)
      : Linear(in_features, out_features, bias, format) {
    if (!generator.skips_init()) reset_parameters(generator.get(), format);
  }

  /// A layer with all-zero parameters, for callers that initialise or load them themselves.
  static Linear zeros(Index in_features, Index out_features, bool bias = true) {
    return Linear(in_features, out_features, bias, WeightFormat::scalar);
  }

  /// Redraws weight, then bias, from U(-1/sqrt(in_features), 1/sqrt(in_features)), as
  /// nn.Linear.reset_parameters does, storing the weight as `format`.
  void reset_parameters(Generator& generator, WeightFormat format = WeightFormat::scalar) {
    const Scalar bound = init_bound(in_features_);
    weight_.refill(format, [&](Index /*row*/, Scalar* row) {
      for (Index c = 0; c < in_features_; ++c) row[c] = generator.uniform<Scalar>(-bound, bound);
    });
    for (Index i = 0; i < bias_.numel(); ++i) {
      bias_.data()[i] = generator.uniform<Scalar>(-bound, bound);
    }
  }

  /// nn.Linear's initialisation bound, 1 / sqrt(in_features).
  static Scalar init_bound(Index in_features) {
    return Scalar(1) / std::sqrt(static_cast<Scalar>(in_features));
  }

  /// This layer behaves the same in training and eval mode; these exist so that code switching
  /// every layer of a model need not know which ones have a mode.
  void train(bool /*training*/ = true) {}
  void eval() {}

  Index in_features() const { return in_features_; }
  Index out_features() const { return out_features_; }
  bool has_bias() const { return has_bias_; }
  /// The weight, for changing it: the layer returns to WeightFormat::scalar (the weight is
  /// widened from its bfloat16 copy, which is dropped so that it cannot disagree), as with every
  /// other way of changing the weight: load_state_dict, an optimiser's step, any mutable
  /// visit_state. (set_weight_format(bfloat16) frees the Scalar weight: take references again
  /// after it.)
  Tensor<Scalar, 2>& weight() { return weight_.mutable_scalar(); }
  /// The weight as Scalar; with WeightFormat::bfloat16, widened at the first call and kept.
  const Tensor<Scalar, 2>& weight() const { return weight_.scalar(); }
  Tensor<Scalar, 1>& bias() { return bias_; }
  const Tensor<Scalar, 1>& bias() const { return bias_; }

  /// y = x W^T + b over the last dimension.
  /// @param x (..., in_features), any strides: a view Eigen cannot map as rows (a transposed
  ///          view, say) is first copied to a contiguous tensor.
  /// @param y (..., out_features), same leading shape, written.
  /// @throws ShapeError if the feature counts or leading shapes disagree.
  template <typename T, int Rank>
  void forward_into(const TensorView<T, Rank>& x, const TensorView<Scalar, Rank>& y) const {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "Linear: input and layer must share one element type.");
    project<Rank>(x, y);
  }

  /// y = x W^T + b: returns a new (..., out_features) tensor. x may have any strides.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> forward(const TensorView<T, Rank>& x) const {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "Linear: input and layer must share one element type.");
    Shape<Rank> shape = x.shape();
    shape[Rank - 1] = out_features_;
    auto y = Tensor<Scalar, Rank>::uninitialized(shape);  // project writes every element
    project<Rank>(x, y.view());
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
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "Linear: input and layer must share one element type.");
    return project_backward<Rank>(x, grad_y);
  }

  /// WeightFormat::bfloat16 rounds every weight to bfloat16 and keeps it in 2 bytes only (the
  /// Scalar weight is freed); forward multiplies inputs of any size with those weights, in
  /// Scalar arithmetic (exactly the rounded weights' products) or, under Autocast, bfloat16's.
  /// WeightFormat::scalar widens the weights back; they stay rounded.
  void set_weight_format(WeightFormat format) { weight_.set_format(format); }
  WeightFormat weight_format() const { return weight_.format(); }
  /// Sets the weight row by row, rows 0, 1, ... in order: fill(row, values) writes row `row`
  /// (in_features Scalars) into `values`. The layer keeps its WeightFormat: a bfloat16 layer
  /// rounds 32 rows at a time and never holds its Scalar weight, so a loader can stream a large
  /// table in (attn/io/gpt2_checkpoint.hpp).
  template <typename Fill>
  void assign_weight(Fill&& fill) {
    weight_.refill(weight_.format(), fill);
  }

  Tensor<Scalar, 2>& weight_grad() { return weight_grad_.get(); }
  const Tensor<Scalar, 2>& weight_grad() const { return weight_grad_.get(); }
  Tensor<Scalar, 1>& bias_grad() { return bias_grad_.get(); }
  const Tensor<Scalar, 1>& bias_grad() const { return bias_grad_.get(); }

 private:
  // The bodies behind forward and backward: one instantiation per rank, whatever the
  // const-ness of the caller's view (the public templates above only convert).
  template <int Rank>
  void project(const TensorView<const Scalar, Rank>& x, const TensorView<Scalar, Rank>& y) const;
  template <int Rank>
  Tensor<Scalar, Rank> project_backward(const TensorView<const Scalar, Rank>& x,
                                        const TensorView<const Scalar, Rank>& grad_y);

  friend class StateVisitable<Linear<ScalarType>>;
  // Entries "<prefix>weight" (out, in) and, with bias, "<prefix>bias" (out), with gradients.
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    // A mutable visit may change the weight: weight() returns the layer to scalar format. A
    // const one reads bfloat16 weights widened for the visit only: every entry is visited
    // while the widening lives, so a caller may keep the weight entry until the bias arrives
    // (MultiHeadEngine::visit_split_qkv does).
    const auto visit_all = [&](auto* weight) {
      visit(parameter_entry(prefix + "weight", {self.out_features_, self.in_features_}, weight,
                            self.weight_grad_));
      if (self.has_bias_) {
        visit(parameter_entry(prefix + "bias", {self.out_features_}, self.bias_.data(),
                              self.bias_grad_));
      }
    };
    if constexpr (std::is_const_v<Self>) {
      self.weight_.visit_scalar(visit_all);
    } else {
      visit_all(self.weight().data());
    }
  }

  // Zeros, stored as `format`.
  Linear(Index in_features, Index out_features, bool bias, WeightFormat format)
      : in_features_(validated(in_features, "in_features")),
        out_features_(validated(out_features, "out_features")),
        has_bias_(bias),
        weight_({out_features, in_features}, format),
        bias_({bias ? out_features : 0}),
        weight_grad_(weight_.shape()),
        bias_grad_(bias_.shape()) {}

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
    } else if (const auto x_rows = row_stride(x), y_rows = row_stride(y); x_rows && y_rows) {
      const Index rows = x.numel() / x.shape()[Rank - 1];
      const TensorView<T, 2> x2(x.data(), {rows, x.shape()[Rank - 1]},
                                {*x_rows, x.strides()[Rank - 1]});
      const TensorView<Scalar, 2> y2(y.data(), {rows, y.shape()[Rank - 1]},
                                     {*y_rows, y.strides()[Rank - 1]});
      body(as_matrix(x2), as_matrix(y2));
    } else {
      for (Index i = 0; i < x.shape()[0]; ++i) {
        for_each_row_block(select(x, 0, i), select(y, 0, i), body);
      }
    }
  }

  // The bias passes over an output of this many rows or more run on every thread.
  static constexpr Index threaded_bias_rows = Index{2} * 1024;

  // The distance between consecutive rows when dims 0..Rank-2 are evenly spaced rows, so they
  // merge into one row dimension; none when they are not. A dim of extent 1 may have any
  // stride, so only the others count: each must step over all the rows inside it.
  template <typename T, int Rank>
  static std::optional<Index> row_stride(const TensorView<T, Rank>& view) {
    std::optional<Index> stride;
    Index rows_inside = 1;
    for (int d = Rank - 2; d >= 0; --d) {
      if (view.shape()[d] == 1) continue;
      if (!stride) {
        stride = view.strides()[d];
      } else if (view.strides()[d] != *stride * rows_inside) {
        return std::nullopt;
      }
      rows_inside *= view.shape()[d];
    }
    return stride ? stride : std::optional<Index>(view.shape()[Rank - 1]);  // one row
  }

  Index in_features_;
  Index out_features_;
  bool has_bias_;
  detail::StoredWeight<Scalar> weight_;
  Tensor<Scalar, 1> bias_;
  Gradient<Scalar, 2> weight_grad_;
  Gradient<Scalar, 1> bias_grad_;
};

template <typename ScalarType>
template <int Rank>
void Linear<ScalarType>::project(const TensorView<const Scalar, Rank>& x,
                                 const TensorView<Scalar, Rank>& y) const {
  detail::require_features("Linear", x.shape(), in_features_, "in_features");
  Shape<Rank> expected = x.shape();
  expected[Rank - 1] = out_features_;
  detail::require_shape("Linear", "output", y.shape(), expected);
  // The GEMM reads x by rows: a transposed or otherwise unmappable view is copied once.
  if (!rows_mappable(x)) return project<Rank>(Tensor<Scalar, Rank>(x).view(), y);
  // bfloat16 weights: stored so, or rounded now for autocast's arithmetic.
  const bool bfloat16_compute = autocast_compute() == Compute::bfloat16;
  std::optional<detail::BFloat16Matrix> rounded;
  if (bfloat16_compute && weight_.format() == WeightFormat::scalar) {
    rounded.emplace(TensorView<const Scalar, 2>(weight_.scalar().view()));
  }
  const detail::BFloat16Matrix& packed = rounded ? *rounded : weight_.packed();
  for_each_row_block(x, y, [&](auto X, auto Y) {
    if (!packed.empty()) {
      const TensorView<const Scalar, 2> rows(X.data(), {X.rows(), X.cols()}, {X.outerStride(), 1});
      packed.multiply(rows, Y.data(), Y.outerStride(), false, bfloat16_compute);
    } else {
      // Y = X W^T: W is (out, in) row-major, the "transposed B" layout of detail::gemm.
      detail::parallel_gemm<false, true>(X.rows(), out_features_, in_features_, Scalar(1), X.data(),
                                         X.outerStride(), weight_.scalar().data(), in_features_,
                                         Scalar(0), Y.data(), Y.outerStride());
    }
    if (has_bias_) {
      const auto bias = as_vector(bias_.view()).transpose();
      detail::for_each_thread_row_block(X.rows(), threaded_bias_rows,
                                        [&](Index /*block*/, Index row0, Index rows) {
                                          Y.middleRows(row0, rows).rowwise() += bias;
                                        });
    }
  });
}

template <typename ScalarType>
template <int Rank>
Tensor<ScalarType, Rank> Linear<ScalarType>::project_backward(
    const TensorView<const Scalar, Rank>& x, const TensorView<const Scalar, Rank>& grad_y) {
  Shape<Rank> y_shape = x.shape();
  y_shape[Rank - 1] = out_features_;
  detail::require_features("Linear::backward", x.shape(), in_features_, "in_features");
  if (grad_y.shape() != y_shape) {
    throw ShapeError(detail::concat("Linear::backward: grad_y has shape ",
                                    to_string(grad_y.shape()), " but must be ",
                                    to_string(y_shape)));
  }
  // Work on contiguous (rows, features) matrices: views that already are cost no copy.
  const detail::Contiguous<Scalar, Rank> X(x), dY(grad_y);
  const Index rows = x.numel() / in_features_;
  auto grad_x = Tensor<Scalar, Rank>::uninitialized(x.shape());
  if (rows == 0) return grad_x;
  // y = x W^T + b   ->   dW += dy^T x,  db += rowsum(dy),  dx = dy W
  const bool bfloat16_compute = autocast_compute() == Compute::bfloat16;
  const Scalar* weight = weight_.scalar().data();
  if (bfloat16_compute) {  // dW (out, in) += dY^T (out, rows) [X^T (in, rows)]^T, rounded
    const detail::BFloat16Matrix x_columns(
        TensorView<const Scalar, 2>(X.data(), {in_features_, rows}, {1, in_features_}));
    x_columns.multiply(
        TensorView<const Scalar, 2>(dY.data(), {out_features_, rows}, {1, out_features_}),
        weight_grad_.get().data(), in_features_, true, true);
  } else {
    detail::parallel_gemm<true, false>(out_features_, in_features_, rows, Scalar(1), dY.data(),
                                       out_features_, X.data(), in_features_, Scalar(1),
                                       weight_grad_.get().data(), in_features_);
  }
  if (has_bias_) {
    // Partial column sums per thread block, added in block order: the same result every run.
    const Eigen::Map<const RowMatrix<Scalar>> grads(dY.data(), rows, out_features_);
    RowMatrix<Scalar> partials =
        RowMatrix<Scalar>::Zero(detail::thread_row_blocks(rows, threaded_bias_rows), out_features_);
    detail::for_each_thread_row_block(
        rows, threaded_bias_rows, [&](Index block, Index row0, Index count) {
          partials.row(block) = grads.middleRows(row0, count).colwise().sum();
        });
    as_vector(bias_grad_.get().view()) += partials.colwise().sum().transpose();
  }
  if (bfloat16_compute) {  // dX (rows, in) = dY (rows, out) [W^T (in, out)]^T, rounded
    const detail::BFloat16Matrix weight_columns(
        TensorView<const Scalar, 2>(weight, {in_features_, out_features_}, {1, in_features_}));
    weight_columns.multiply(
        TensorView<const Scalar, 2>(dY.data(), {rows, out_features_}, {out_features_, 1}),
        grad_x.data(), in_features_, false, true);
  } else {
    detail::parallel_gemm<false, false>(rows, in_features_, out_features_, Scalar(1), dY.data(),
                                        out_features_, weight, in_features_, Scalar(0),
                                        grad_x.data(), in_features_);
  }
  return grad_x;
}

}  // namespace attn

#endif  // ATTN_LAYERS_LINEAR_HPP
