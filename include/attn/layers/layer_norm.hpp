// attn/layers/layer_norm.hpp: LayerNorm, the book's layer normalisation (section 4.2): each row
// of the last dimension normalised to mean 0 and variance 1, then scaled and shifted by learned
// parameters. The GPT model (models/gpt_model.hpp) applies it before attention and the
// feed-forward network of every TransformerBlock, and once more before the output head.
#ifndef ATTN_LAYERS_LAYER_NORM_HPP
#define ATTN_LAYERS_LAYER_NORM_HPP

#include <cmath>
#include <string>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/state/gradient.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/threads.hpp"

namespace attn {

/// y = scale * (x - mean) / sqrt(var + eps) + shift over the last dimension, as the book's
/// LayerNorm computes it: mean and the biased variance (unbiased=False, divided by emb_dim) of
/// each row, eps = 1e-5 added to the variance inside the square root, parameters `scale` (ones)
/// and `shift` (zeros), both (emb_dim). Its initialisation draws nothing from a generator, as in
/// PyTorch. Same in training and eval mode.
template <typename ScalarType>
class LayerNorm : public StateVisitable<LayerNorm<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// The book's self.eps.
  static constexpr double default_eps = 1e-5;

  /// @throws std::invalid_argument if emb_dim is not positive.
  explicit LayerNorm(Index emb_dim)
      : scale_(Shape<1>{validated(emb_dim)}, Scalar(1)),
        shift_(Shape<1>{emb_dim}),
        scale_grad_(Shape<1>{emb_dim}),
        shift_grad_(Shape<1>{emb_dim}) {}

  Index emb_dim() const { return scale_.size(0); }
  Scalar eps() const { return static_cast<Scalar>(default_eps); }
  Tensor<Scalar, 1>& scale() { return scale_; }
  const Tensor<Scalar, 1>& scale() const { return scale_; }
  Tensor<Scalar, 1>& shift() { return shift_; }
  const Tensor<Scalar, 1>& shift() const { return shift_; }
  Tensor<Scalar, 1>& scale_grad() { return scale_grad_.get(); }
  Tensor<Scalar, 1>& shift_grad() { return shift_grad_.get(); }

  /// This layer behaves the same in training and eval mode; these exist so that code switching
  /// every layer of a model need not know which ones have a mode.
  void train(bool /*training*/ = true) {}
  void eval() {}

  /// What forward keeps for backward: the normalised rows (x - mean) / sqrt(var + eps), as
  /// (rows, emb_dim) with rows the product of the leading dims, and 1 / sqrt(var + eps) per row.
  struct Cache {
    Tensor<Scalar, 2> normalized;
    Tensor<Scalar, 1> rstd;
  };

  /// @param x (..., emb_dim), any rank and strides (a view that is not contiguous is copied to
  ///          a contiguous tensor first). @return a tensor of x's shape.
  /// @throws ShapeError if the last dim is not emb_dim.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> forward(const TensorView<T, Rank>& x) const {
    return run<Rank>(x, nullptr);
  }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  template <typename T, int Rank>
  Tensor<Scalar, Rank> forward(const TensorView<T, Rank>& x, Cache& cache) const {
    return run<Rank>(x, &cache);
  }

  /// Backward of forward(x, cache): accumulates (+=) dL/dscale = sum over rows of dy * x_hat and
  /// dL/dshift = sum over rows of dy, and returns dL/dx, with g = dy * scale:
  ///   dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + eps)   (means over the row).
  /// @param grad_y (..., emb_dim), dL/dy, with as many rows as the forward's input.
  /// @throws ShapeError if grad_y does not match the forward's rows.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> backward(const Cache& cache, const TensorView<T, Rank>& grad_y) {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "LayerNorm: the gradient and the layer must share one element type.");
    detail::require_features("LayerNorm::backward", grad_y.shape(), emb_dim(), "emb_dim");
    const Index rows = grad_y.numel() / emb_dim();
    if (cache.normalized.size(0) != rows || cache.normalized.size(1) != emb_dim()) {
      throw ShapeError(detail::concat(
          "LayerNorm::backward: grad_y has shape ", to_string(grad_y.shape()), " (", rows,
          " rows) but the forward normalised ", cache.normalized.size(0), " rows"));
    }
    const detail::Contiguous<Scalar, Rank> dy(grad_y);
    auto grad_x = Tensor<Scalar, Rank>::uninitialized(grad_y.shape());
    backward_rows(cache, dy.data(), grad_x.data());
    return grad_x;
  }

 private:
  friend class StateVisitable<LayerNorm<ScalarType>>;
  // Entries "scale" and "shift" (emb_dim), with gradients: the book's parameter names.
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    visit(
        parameter_entry(prefix + "scale", {self.emb_dim()}, self.scale_.data(), self.scale_grad_));
    visit(
        parameter_entry(prefix + "shift", {self.emb_dim()}, self.shift_.data(), self.shift_grad_));
  }

  static Index validated(Index emb_dim) {
    detail::require_positive("LayerNorm", "emb_dim", emb_dim);
    return emb_dim;
  }

  template <int Rank, typename T>
  Tensor<Scalar, Rank> run(const TensorView<T, Rank>& x, Cache* cache) const {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "LayerNorm: input and layer must share one element type.");
    detail::require_features("LayerNorm", x.shape(), emb_dim(), "emb_dim");
    const detail::Contiguous<Scalar, Rank> in(x);
    const Index rows = x.numel() / emb_dim();
    auto y = Tensor<Scalar, Rank>::uninitialized(x.shape());
    if (cache != nullptr) {
      cache->normalized = Tensor<Scalar, 2>::uninitialized({rows, emb_dim()});
      cache->rstd = Tensor<Scalar, 1>::uninitialized({rows});
    }
    normalize_rows(in.data(), rows, y.data(), cache);
    return y;
  }

  // The bodies behind forward and backward, on contiguous rows.
  void normalize_rows(const Scalar* x, Index rows, Scalar* y, Cache* cache) const;
  void backward_rows(const Cache& cache, const Scalar* grad_y, Scalar* grad_x);

  // Row passes over this many rows or more run on every thread.
  static constexpr Index threaded_rows = 256;

  Tensor<Scalar, 1> scale_, shift_;
  Gradient<Scalar, 1> scale_grad_, shift_grad_;
};

template <typename ScalarType>
void LayerNorm<ScalarType>::normalize_rows(const Scalar* x, Index rows, Scalar* y,
                                           Cache* cache) const {
  using Row = Eigen::Array<Scalar, 1, Eigen::Dynamic>;
  const Index E = emb_dim();
  const Scalar n = static_cast<Scalar>(E);
  const Scalar epsilon = eps();
  const Eigen::Map<const Row> scale(scale_.data(), E), shift(shift_.data(), E);
  detail::for_each_thread_row_block(rows, threaded_rows, [&](Index, Index row0, Index count) {
    Row centered(E);
    for (Index r = row0; r < row0 + count; ++r) {
      const Eigen::Map<const Row> in(x + r * E, E);
      centered = in - in.sum() / n;
      // The biased variance by two passes (PyTorch's Welford gives the same to rounding), and
      // a division by the standard deviation, as the book writes it.
      const Scalar std_dev = std::sqrt(centered.square().sum() / n + epsilon);
      Eigen::Map<Row> out(y + r * E, E);
      if (cache != nullptr) {
        Eigen::Map<Row> normalized(cache->normalized.data() + r * E, E);
        normalized = centered / std_dev;
        out = scale * normalized + shift;
        cache->rstd.data()[r] = Scalar(1) / std_dev;
      } else {
        out = scale * (centered / std_dev) + shift;
      }
    }
  });
}

template <typename ScalarType>
void LayerNorm<ScalarType>::backward_rows(const Cache& cache, const Scalar* grad_y,
                                          Scalar* grad_x) {
  using Row = Eigen::Array<Scalar, 1, Eigen::Dynamic>;
  using Rows = Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Index E = emb_dim(), rows = cache.normalized.size(0);
  const Scalar n = static_cast<Scalar>(E);
  const Eigen::Map<const Row> scale(scale_.data(), E);
  // Partial sums of the parameter gradients per thread block, added in block order: the same
  // result on every run.
  const Index blocks = detail::thread_row_blocks(rows, threaded_rows);
  Rows scale_partials = Rows::Zero(blocks, E), shift_partials = Rows::Zero(blocks, E);
  detail::for_each_thread_row_block(rows, threaded_rows, [&](Index block, Index row0, Index count) {
    Row g(E);
    for (Index r = row0; r < row0 + count; ++r) {
      const Eigen::Map<const Row> dy(grad_y + r * E, E);
      const Eigen::Map<const Row> x_hat(cache.normalized.data() + r * E, E);
      // y = scale * x_hat + shift  ->  dscale += dy x_hat, dshift += dy, dx_hat = dy scale
      scale_partials.row(block) += dy * x_hat;
      shift_partials.row(block) += dy;
      g = dy * scale;
      // x_hat = (x - mean) rstd  ->  dx = rstd (g - mean(g) - x_hat mean(g x_hat))
      const Scalar mean_g = g.sum() / n, mean_gx = (g * x_hat).sum() / n;
      Eigen::Map<Row>(grad_x + r * E, E) = cache.rstd.data()[r] * (g - mean_g - x_hat * mean_gx);
    }
  });
  Eigen::Map<Row>(scale_grad_.get().data(), E) += scale_partials.colwise().sum();
  Eigen::Map<Row>(shift_grad_.get().data(), E) += shift_partials.colwise().sum();
}

}  // namespace attn

#endif  // ATTN_LAYERS_LAYER_NORM_HPP
