// attn/optim/sgd.hpp: stochastic gradient descent with momentum and weight decay, with
// torch.optim.SGD's update rule and defaults. It walks parameters through visit_state, so it
// trains any attn layer, or several, without a common base class.
#ifndef ATTN_OPTIM_SGD_HPP
#define ATTN_OPTIM_SGD_HPP

#include <cmath>
#include <string>
#include <vector>

#include "attn/config.hpp"
#include "attn/optim/parameter_list.hpp"

namespace attn {

/// torch.optim.SGD (PyTorch 1.13 rule), for every parameter p with gradient g:
///   g += weight_decay * p
///   buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g   (momentum > 0)
///   g = g + momentum * buf (nesterov) or g = buf
///   p -= lr * g
template <typename Scalar>
class SGD {
 public:
  struct Options {
    Scalar lr;  ///< required, as in PyTorch
    Scalar momentum = 0;
    Scalar dampening = 0;
    Scalar weight_decay = 0;
    bool nesterov = false;
  };

  /// @throws std::invalid_argument for a negative or non-finite lr, momentum or weight_decay,
  ///         or nesterov without momentum.
  explicit SGD(const Options& options) : options_(options) {
    detail::require_hyperparameter("SGD", "lr", options.lr);
    detail::require_hyperparameter("SGD", "momentum", options.momentum);
    detail::require_hyperparameter("SGD", "dampening", options.dampening);
    detail::require_hyperparameter("SGD", "weight_decay", options.weight_decay);
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0)) {
      throw std::invalid_argument("SGD: nesterov needs momentum > 0 and dampening 0");
    }
  }

  /// Registers a layer's parameters, named with `prefix`. The layer must outlive the optimiser
  /// and stay where it is (the optimiser keeps pointers to its parameters).
  template <typename Layer>
  void add(Layer& layer, const std::string& prefix = "") {
    parameters_.add(layer, prefix);
    buffers_.resize(parameters_.size());
  }

  const detail::ParameterList<Scalar>& parameters() const { return parameters_; }

  /// One update of every registered parameter from its accumulated gradient.
  void step() {
    parameters_.before_update();
    for (std::size_t n = 0; n < parameters_.size(); ++n) {
      const auto& p = parameters_[n];
      std::vector<Scalar>& buffer = buffers_[n];
      const bool first = buffer.empty();
      if (options_.momentum != 0 && first) buffer.resize(static_cast<std::size_t>(p.numel));
      for (Index i = 0; i < p.numel; ++i) {
        Scalar g = p.grad[i] + options_.weight_decay * p.data[i];
        if (options_.momentum != 0) {
          Scalar& b = buffer[static_cast<std::size_t>(i)];
          b = first ? g : options_.momentum * b + (1 - options_.dampening) * g;
          g = options_.nesterov ? g + options_.momentum * b : b;
        }
        p.data[i] -= options_.lr * g;
      }
    }
  }

  /// Zeroes every registered gradient.
  void zero_grad() { parameters_.zero_grad(); }

 private:
  Options options_;
  detail::ParameterList<Scalar> parameters_;
  std::vector<std::vector<Scalar>> buffers_;
};

}  // namespace attn

#endif  // ATTN_OPTIM_SGD_HPP
