// attn/optim/parameter_list.hpp: the parameters an optimiser updates, gathered by name from
// one or more layers through their visit_state.
#ifndef ATTN_OPTIM_PARAMETER_LIST_HPP
#define ATTN_OPTIM_PARAMETER_LIST_HPP

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "attn/config.hpp"
#include "attn/state/state_dict.hpp"

namespace attn::detail {

template <typename Scalar>
struct ParameterSlot {
  std::string name;
  Scalar* data;
  Scalar* grad;
  Index numel;
};

template <typename Scalar>
class ParameterList {
 public:
  /// Adds every trainable entry of `layer` (buffers are skipped).
  /// @throws std::invalid_argument if a name is registered twice.
  template <typename Layer>
  void add(Layer& layer, const std::string& prefix) {
    // All of the layer's slots or none: a name registered twice leaves the list as it was.
    std::vector<ParameterSlot<Scalar>> added;
    layer.visit_state([&](const StateEntry<Scalar>& entry) {
      if (entry.kind != StateKind::parameter) return;
      const std::string name = prefix + entry.name;
      for (const auto* slots : {&slots_, &added}) {
        for (const auto& slot : *slots) {
          if (slot.name == name) {
            throw std::invalid_argument("optimiser: parameter '" + name + "' is registered twice");
          }
        }
      }
      added.push_back({name, entry.data, entry.grad.get(), entry.numel()});  // allocates it
    });
    const std::size_t first = slots_.size();
    slots_.insert(slots_.end(), added.begin(), added.end());
    // The optimiser writes the parameters through the pointers above, without the layer: before
    // each step the layer is visited mutably again, as any change of its state is, so that it
    // returns to Scalar weights (a layer switched to WeightFormat::bfloat16 since holds none:
    // they are widened anew), and the pointers are taken again, in the same order.
    layers_.emplace_back([&layer, first](std::vector<ParameterSlot<Scalar>>& slots) {
      std::size_t n = first;
      layer.visit_state([&](const StateEntry<Scalar>& entry) {
        if (entry.kind != StateKind::parameter) return;
        slots[n].data = entry.data;
        slots[n].grad = entry.grad.get();
        ++n;
      });
    });
  }

  /// Tells every layer added that its parameters are about to change (call before updating),
  /// and takes their current addresses.
  void before_update() {
    for (const auto& layer : layers_) layer(slots_);
  }

  std::size_t size() const { return slots_.size(); }
  const ParameterSlot<Scalar>& operator[](std::size_t i) const { return slots_[i]; }

  void zero_grad() {
    for (const auto& slot : slots_) std::fill(slot.grad, slot.grad + slot.numel, Scalar(0));
  }

 private:
  std::vector<ParameterSlot<Scalar>> slots_;
  std::vector<std::function<void(std::vector<ParameterSlot<Scalar>>&)>> layers_;
};

/// @throws std::invalid_argument "<who>: <name> (<value>) must be finite and non-negative".
template <typename Scalar>
void require_hyperparameter(const char* who, const char* name, Scalar value) {
  if (!(value >= Scalar(0)) || !std::isfinite(value)) {
    throw std::invalid_argument(
        concat(who, ": ", name, " (", value, ") must be finite and non-negative"));
  }
}

}  // namespace attn::detail

#endif  // ATTN_OPTIM_PARAMETER_LIST_HPP
