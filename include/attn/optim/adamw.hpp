// attn/optim/adamw.hpp: AdamW (Loshchilov and Hutter, 2019), Adam with decoupled weight decay,
// with torch.optim.AdamW's update rule and defaults.
#ifndef ATTN_OPTIM_ADAMW_HPP
#define ATTN_OPTIM_ADAMW_HPP

#include <cmath>
#include <string>
#include <vector>

#include "attn/config.hpp"
#include "attn/optim/parameter_list.hpp"

namespace attn {

/// torch.optim.AdamW (PyTorch 1.13 rule), at step t for every parameter p with gradient g:
///   p *= 1 - lr * weight_decay
///   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
template <typename Scalar>
class AdamW {
 public:
  struct Options {
    Scalar lr = Scalar(1e-3);
    Scalar beta1 = Scalar(0.9);
    Scalar beta2 = Scalar(0.999);
    Scalar eps = Scalar(1e-8);
    Scalar weight_decay = Scalar(1e-2);
  };

  /// @throws std::invalid_argument for a negative or non-finite hyper-parameter, or a beta
  ///         outside [0, 1).
  explicit AdamW(const Options& options = Options()) : options_(options) {
    detail::require_hyperparameter("AdamW", "lr", options.lr);
    detail::require_hyperparameter("AdamW", "eps", options.eps);
    detail::require_hyperparameter("AdamW", "weight_decay", options.weight_decay);
    for (Scalar beta : {options.beta1, options.beta2}) {
      if (!(beta >= 0 && beta < 1)) {
        throw std::invalid_argument(detail::concat("AdamW: beta (", beta, ") must be in [0, 1)"));
      }
    }
  }

  /// Registers a layer's parameters, named with `prefix`. The layer must outlive the optimiser
  /// and stay where it is (the optimiser keeps pointers to its parameters).
  template <typename Layer>
  void add(Layer& layer, const std::string& prefix = "") {
    parameters_.add(layer, prefix);
    first_moment_.resize(parameters_.size());
    second_moment_.resize(parameters_.size());
  }

  const detail::ParameterList<Scalar>& parameters() const { return parameters_; }
  long steps() const { return step_; }

  /// One update of every registered parameter from its accumulated gradient.
  void step() {
    parameters_.before_update();
    ++step_;
    const auto& o = options_;
    // PyTorch forms these step constants in Python doubles and rounds them once to Scalar.
    const double t = static_cast<double>(step_);
    const auto step_size = static_cast<Scalar>(static_cast<double>(o.lr) /
                                               (1 - std::pow(static_cast<double>(o.beta1), t)));
    const auto bias_correction2_sqrt =
        static_cast<Scalar>(std::sqrt(1 - std::pow(static_cast<double>(o.beta2), t)));
    const auto decay = static_cast<Scalar>(1 - static_cast<double>(o.lr) * o.weight_decay);
    for (std::size_t n = 0; n < parameters_.size(); ++n) {
      const auto& p = parameters_[n];
      auto& m = first_moment_[n];
      auto& v = second_moment_[n];
      if (m.empty()) {
        m.assign(static_cast<std::size_t>(p.numel), Scalar(0));
        v.assign(static_cast<std::size_t>(p.numel), Scalar(0));
      }
      for (Index i = 0; i < p.numel; ++i) {
        const auto j = static_cast<std::size_t>(i);
        const Scalar g = p.grad[i];
        p.data[i] *= decay;
        m[j] = o.beta1 * m[j] + (1 - o.beta1) * g;
        v[j] = o.beta2 * v[j] + (1 - o.beta2) * g * g;
        p.data[i] -= step_size * m[j] / (std::sqrt(v[j]) / bias_correction2_sqrt + o.eps);
      }
    }
  }

  /// Zeroes every registered gradient.
  void zero_grad() { parameters_.zero_grad(); }

 private:
  Options options_;
  detail::ParameterList<Scalar> parameters_;
  std::vector<std::vector<Scalar>> first_moment_, second_moment_;
  long step_ = 0;
};

}  // namespace attn

#endif  // ATTN_OPTIM_ADAMW_HPP
