// attn/layers/embedding.hpp: Embedding, a lookup table of learned vectors (nn.Embedding):
// token ids in, vectors out. The first layer of the training example.
#ifndef ATTN_LAYERS_EMBEDDING_HPP
#define ATTN_LAYERS_EMBEDDING_HPP

#include <algorithm>
#include <string>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/layers/detail/stored_weight.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/gradient.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// nn.Embedding: `weight` is (num_embeddings, embedding_dim), initialised N(0, 1) as PyTorch
/// does, with torch.randn's draws (Generator::normal_fill): Generator(s) gives the weights of
/// `torch.manual_seed(s); nn.Embedding(...)` (floats within a few ulp, see normal_fill).
template <typename ScalarType>
class Embedding : public StateVisitable<Embedding<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// Stores the table as `format` (WeightFormat::bfloat16: rounded as drawn, never held in
  /// Scalar when embedding_dim is a multiple of 16; otherwise drawn whole, then rounded).
  /// @throws std::invalid_argument if a size is not positive.
  Embedding(Index num_embeddings, Index embedding_dim, GeneratorRef generator = Generator(),
            WeightFormat format = WeightFormat::scalar)
      : weight_(validated(num_embeddings, embedding_dim), format), weight_grad_(weight_.shape()) {
    if (generator.skips_init()) return;  // zeros, already stored as `format`
    Generator& draws = generator.get();
    if (format == WeightFormat::bfloat16 && embedding_dim % 16 == 0) {
      // torch.randn draws all uniforms, then transforms blocks of 16: row by row is the same.
      weight_.refill(format, [&](Index, Scalar* row) { draws.normal_fill(row, embedding_dim); });
      return;
    }
    Tensor<Scalar, 2>& table = weight_.mutable_scalar();
    draws.normal_fill(table.data(), table.numel());
    weight_.set_format(format);
  }

  Index num_embeddings() const { return weight_.shape()[0]; }
  Index embedding_dim() const { return weight_.shape()[1]; }
  /// The table, for changing it: the layer returns to WeightFormat::scalar (as Linear::weight).
  Tensor<Scalar, 2>& weight() { return weight_.mutable_scalar(); }
  /// The table as Scalar; with WeightFormat::bfloat16, widened at the first call and kept.
  const Tensor<Scalar, 2>& weight() const { return weight_.scalar(); }
  Tensor<Scalar, 2>& weight_grad() { return weight_grad_.get(); }

  /// Stores the table as `format`, as Linear::set_weight_format: WeightFormat::bfloat16 rounds
  /// it and keeps 2 bytes a value only; lookups widen the rows they return.
  void set_weight_format(WeightFormat format) { weight_.set_format(format); }
  WeightFormat weight_format() const { return weight_.format(); }
  /// Sets the table row by row, in order, keeping its WeightFormat, as Linear::assign_weight.
  template <typename Fill>
  void assign_weight(Fill&& fill) {
    weight_.refill(weight_.format(), fill);
  }

  /// This layer behaves the same in training and eval mode; these exist so that code switching
  /// every layer of a model need not know which ones have a mode.
  void train(bool /*training*/ = true) {}
  void eval() {}

  /// @param ids (B, T) indices in [0, num_embeddings). @return (B, T, embedding_dim).
  /// @throws IndexError naming an id outside [0, num_embeddings).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids) const {
    check(ids);
    auto out = Tensor<Scalar, 3>::uninitialized({ids.size(0), ids.size(1), embedding_dim()});
    Scalar* row = out.data();
    for (Index b = 0; b < ids.size(0); ++b) {
      for (Index t = 0; t < ids.size(1); ++t, row += embedding_dim()) {
        if (weight_.format() == WeightFormat::bfloat16) {
          weight_.packed().row(ids(b, t), row);
        } else {
          const Scalar* source = weight_.scalar().data() + ids(b, t) * embedding_dim();
          std::copy(source, source + embedding_dim(), row);
        }
      }
    }
    return out;
  }

  /// Backward of forward(ids): accumulates (+=) each output row's gradient into the row of the
  /// id it was looked up from. Ids are not differentiable, so nothing is returned.
  /// @param grad_out (B, T, embedding_dim).
  void backward(const TensorView<const Index, 2>& ids,
                const TensorView<const Scalar, 3>& grad_out) {
    check(ids);
    const Shape<3> expected{ids.size(0), ids.size(1), embedding_dim()};
    if (grad_out.shape() != expected) {
      throw ShapeError(detail::concat("Embedding::backward: grad_out has shape ",
                                      to_string(grad_out.shape()), " but must be ",
                                      to_string(expected)));
    }
    auto table = as_matrix(weight_grad_.get().view());
    for (Index b = 0; b < ids.size(0); ++b) {
      for (Index t = 0; t < ids.size(1); ++t) {
        table.row(ids(b, t)) += as_matrix(select(grad_out, 0, b)).row(t);
      }
    }
  }

  /// Adds rows first .. first + T - 1 of the table to every sequence of x (B, T,
  /// embedding_dim), in place: a positional embedding, the book's
  /// `x + pos_emb(torch.arange(first, first + T))` broadcast over the batch.
  /// @throws ShapeError if x's last dim is not embedding_dim; IndexError if the rows pass
  ///         num_embeddings.
  void add_positions(const TensorView<Scalar, 3>& x, Index first = 0) const {
    check_positions("Embedding::add_positions", x.shape(), first);
    const auto rows = as_matrix(weight_.scalar().view()).middleRows(first, x.size(1));
    for (Index b = 0; b < x.size(0); ++b) as_matrix(select(x, 0, b)) += rows;
  }

  /// Backward of add_positions: accumulates (+=) into the gradient of row first + t the
  /// gradient of position t summed over the batch (the row was added to every sequence).
  /// @param grad (B, T, embedding_dim), dL/dx.
  /// @throws as add_positions.
  void add_positions_backward(const TensorView<const Scalar, 3>& grad, Index first = 0) {
    check_positions("Embedding::add_positions_backward", grad.shape(), first);
    auto rows = as_matrix(weight_grad_.get().view()).middleRows(first, grad.size(1));
    for (Index b = 0; b < grad.size(0); ++b) rows += as_matrix(select(grad, 0, b));
  }

 private:
  friend class StateVisitable<Embedding<ScalarType>>;
  // Entry "weight" (num_embeddings, embedding_dim), with its gradient.
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    // As Linear's: a const visit widens bfloat16 weights for the visit only.
    if constexpr (std::is_const_v<Self>) {
      self.weight_.visit_scalar([&](const Scalar* weight) {
        visit(parameter_entry(prefix + "weight", {self.num_embeddings(), self.embedding_dim()},
                              weight, self.weight_grad_));
      });
    } else {
      visit(parameter_entry(prefix + "weight", {self.num_embeddings(), self.embedding_dim()},
                            self.weight().data(), self.weight_grad_));
    }
  }

  static Shape<2> validated(Index num_embeddings, Index embedding_dim) {
    detail::require_positive("Embedding", "num_embeddings", num_embeddings);
    detail::require_positive("Embedding", "embedding_dim", embedding_dim);
    return {num_embeddings, embedding_dim};
  }

  void check_positions(const char* who, const Shape<3>& x, Index first) const {
    if (x[2] != embedding_dim()) {
      throw ShapeError(detail::concat(who, ": input has shape ", to_string(x),
                                      " but its last dim must be embedding_dim (", embedding_dim(),
                                      ")"));
    }
    if (first < 0 || first + x[1] > num_embeddings()) {
      throw IndexError(detail::concat(who, ": positions [", first, ", ", first + x[1],
                                      ") are not inside the table's ", num_embeddings(), " rows"));
    }
  }

  void check(const TensorView<const Index, 2>& ids) const {
    for (Index b = 0; b < ids.size(0); ++b) {
      for (Index t = 0; t < ids.size(1); ++t) {
        if (ids(b, t) < 0 || ids(b, t) >= num_embeddings()) {
          throw IndexError(detail::concat("Embedding: id ", ids(b, t), " at (", b, ", ", t,
                                          ") is outside [0, ", num_embeddings(), ")"));
        }
      }
    }
  }

  detail::StoredWeight<Scalar> weight_;
  Gradient<Scalar, 2> weight_grad_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_EMBEDDING_HPP
