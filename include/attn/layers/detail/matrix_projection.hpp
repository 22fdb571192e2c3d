// attn/layers/detail/matrix_projection.hpp: the projection SelfAttentionV1 is built from: a raw
// (d_in, d_out) weight, y = x W, as the book's `x @ self.W_query` (no bias, not transposed). It
// has Linear's forward/backward/visit_state shape, so the shared three-projection code serves
// both. Private: users reach it through SelfAttentionV1.
#ifndef ATTN_LAYERS_DETAIL_MATRIX_PROJECTION_HPP
#define ATTN_LAYERS_DETAIL_MATRIX_PROJECTION_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/kernels/gemm.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/gradient.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn::detail {

template <typename ScalarType>
class MatrixProjection : public StateVisitable<MatrixProjection<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// Draws the weight U[0, 1) in row-major order, like the book's torch.rand(d_in, d_out).
  /// @throws std::invalid_argument naming `who` if d_in or d_out is not positive.
  MatrixProjection(const char* who, Index d_in, Index d_out, GeneratorRef generator)
      : weight_(validated(who, d_in, d_out)), weight_grad_(weight_.shape()) {
    if (generator.skips_init()) return;
    for (Index i = 0; i < weight_.numel(); ++i) {
      weight_.data()[i] = generator.get().uniform<Scalar>();
    }
  }

  Index in_features() const { return weight_.size(0); }
  Index out_features() const { return weight_.size(1); }
  Tensor<Scalar, 2>& weight() { return weight_; }

  /// x (T, d_in) -> x W (T, d_out). SeparateProjections hands it a view it can read by rows.
  Tensor<Scalar, 2> forward(const TensorView<const Scalar, 2>& x) const {
    const auto X = as_matrix(x);  // checks the layout gemm needs
    auto y = Tensor<Scalar, 2>::uninitialized({x.size(0), out_features()});
    gemm<false, false>(X.rows(), out_features(), in_features(), Scalar(1), X.data(),
                       X.outerStride(), weight_.data(), out_features(), Scalar(0), y.data(),
                       out_features());
    return y;
  }

  /// y = x W  ->  dW += x^T dy (accumulated); returns dx = dy W^T. x and dy are contiguous.
  Tensor<Scalar, 2> backward(const TensorView<const Scalar, 2>& x,
                             const TensorView<const Scalar, 2>& grad_y) {
    const Index rows = x.size(0);
    auto grad_x = Tensor<Scalar, 2>::uninitialized(x.shape());
    gemm<true, false>(in_features(), out_features(), rows, Scalar(1), x.data(), in_features(),
                      grad_y.data(), out_features(), Scalar(1), weight_grad_.get().data(),
                      out_features());
    gemm<false, true>(rows, in_features(), out_features(), Scalar(1), grad_y.data(), out_features(),
                      weight_.data(), out_features(), Scalar(0), grad_x.data(), in_features());
    return grad_x;
  }

 private:
  friend class StateVisitable<MatrixProjection<ScalarType>>;
  // One entry: the weight is itself the parameter, named `name` (e.g. "W_query").
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& name) {
    visit(parameter_entry(name, {self.in_features(), self.out_features()}, self.weight_.data(),
                          self.weight_grad_));
  }

  static Shape<2> validated(const char* who, Index d_in, Index d_out) {
    require_positive(who, "d_in", d_in);
    require_positive(who, "d_out", d_out);
    return {d_in, d_out};
  }

  Tensor<Scalar, 2> weight_;
  Gradient<Scalar, 2> weight_grad_;
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_MATRIX_PROJECTION_HPP
