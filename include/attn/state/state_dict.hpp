// attn/state/state_dict.hpp: the parameter protocol: named parameters, as PyTorch's state_dict
// names them.
//
// Every layer exposes `visit_state(visitor, prefix)`, calling the visitor once per entry with a
// StateEntry: the PyTorch name ("W_query.weight", "heads.0.W_key.bias", "out_proj.weight"), the
// shape, and where the values live. On a const layer the entries are StateEntry<const Scalar>, so
// read-only walks cannot write. The free functions here build on that one hook: copying out a
// state_dict, loading one with strict name/shape checks, counting parameters. An optimiser,
// a file writer or a gradient checker walks the same entries, so no layer needs a virtual base
// class. This header sits below the layers: io/ and optim/ depend on it, not on any layer.
#ifndef ATTN_STATE_STATE_DICT_HPP
#define ATTN_STATE_STATE_DICT_HPP

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/config.hpp"
#include "attn/state/gradient.hpp"

namespace attn {

/// A tensor by value with a dynamic rank: what a state_dict holds.
template <typename Scalar>
struct NamedTensor {
  std::vector<Index> shape;
  std::vector<Scalar> values;  // row-major
};

/// Name -> tensor, ordered by name. Names and shapes follow PyTorch's state_dict.
template <typename Scalar>
using StateDict = std::map<std::string, NamedTensor<Scalar>>;

/// What a state entry holds.
enum class StateKind {
  parameter,    ///< trainable; `data` points at the layer's row-major values
  causal_mask,  ///< the book's `mask` buffer, triu(ones(n, n), 1): derived, `data` is null
};

/// Where a parameter's gradient lives: a layer's Gradient (state/gradient.hpp), allocated at
/// its first use, or plain storage a layer keeps itself (a T*), seen from an offset on; or
/// nothing (buffers). Entries of a mutable visit may allocate it (get); entries of a const visit
/// only read what exists.
template <typename T>
class GradientRef {
 public:
  GradientRef() = default;
  /// Storage that always exists (a layer of the user's own that keeps its gradient itself).
  GradientRef(T* data)  // NOLINT(google-explicit-constructor): a T* was the protocol's grad
      : data_(data) {}
  /// The gradient a Gradient holds (of a const layer: T must be const).
  template <typename Scalar, int Rank>
  explicit GradientRef(Gradient<Scalar, Rank>& gradient)
      : owner_(&gradient), resolve_(&resolve<Gradient<Scalar, Rank>>) {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>, "GradientRef: wrong Scalar.");
  }
  template <typename Scalar, int Rank>
  explicit GradientRef(const Gradient<Scalar, Rank>& gradient)
      : owner_(const_cast<Gradient<Scalar, Rank>*>(&gradient)),  // only read: see resolve
        resolve_(&resolve<const Gradient<Scalar, Rank>>) {
    static_assert(std::is_same_v<T, const Scalar>,
                  "GradientRef: a const layer's gradient gives const entries.");
  }

  /// The values, allocated (zeros) now if the entry is mutable and nothing did yet; null for a
  /// buffer, or for a const entry whose gradient was never allocated (all zeros).
  T* get() const { return at_offset(resolve_ != nullptr ? resolve_(owner_, true) : data_); }
  /// The values if already allocated, else null (nothing accumulated yet: all zeros).
  T* if_allocated() const {
    return at_offset(resolve_ != nullptr ? resolve_(owner_, false) : data_);
  }
  /// The same gradient seen `offset` elements further on (a block of a stacked parameter).
  GradientRef offset_by(Index offset) const {
    GradientRef ref = *this;
    ref.offset_ += offset;
    return ref;
  }

 private:
  template <typename Buffer>
  static T* resolve(void* owner, bool allocate) {
    Buffer& gradient = *static_cast<Buffer*>(owner);
    if constexpr (std::is_const_v<Buffer>) {
      return gradient.data_if_allocated();
    } else {
      return allocate ? gradient.get().data() : gradient.data_if_allocated();
    }
  }
  T* at_offset(T* data) const { return data != nullptr ? data + offset_ : nullptr; }

  T* data_ = nullptr;
  void* owner_ = nullptr;
  T* (*resolve_)(void*, bool) = nullptr;
  Index offset_ = 0;
};

/// One entry a layer reports from visit_state. `T` is `Scalar` when the layer was visited
/// mutably and `const Scalar` when it was visited through a const reference.
template <typename T>
struct StateEntry {
  using Kind = StateKind;
  std::string name;
  std::vector<Index> shape;
  T* data = nullptr;
  Kind kind = Kind::parameter;
  /// The parameter's gradient, same shape, accumulated by backward (none for buffers).
  GradientRef<T> grad;

  Index numel() const {
    Index count = 1;
    for (Index extent : shape) count *= extent;
    return count;
  }
};

/// The element type of the entries a layer hands out when visited as `Owner` (const or not).
template <typename Owner, typename Scalar>
using StateElement = std::conditional_t<std::is_const_v<Owner>, const Scalar, Scalar>;

namespace detail {
template <typename T>
struct NotDeduced {
  using type = T;
};
}  // namespace detail

/// A trainable entry: `data` and `grad` (same shape) are the layer's own storage (`grad` a
/// GradientRef, or a T* that always exists).
template <typename T>
StateEntry<T> parameter_entry(std::string name, std::vector<Index> shape, T* data,
                              typename detail::NotDeduced<GradientRef<T>>::type grad) {
  return {std::move(name), std::move(shape), data, StateKind::parameter, grad};
}

/// The same with the gradient a layer's Gradient holds (state/gradient.hpp), of the const-ness
/// of the layer visited.
template <typename T, typename Scalar, int Rank>
StateEntry<T> parameter_entry(std::string name, std::vector<Index> shape, T* data,
                              Gradient<Scalar, Rank>& gradient) {
  return parameter_entry(std::move(name), std::move(shape), data, GradientRef<T>(gradient));
}
template <typename T, typename Scalar, int Rank>
StateEntry<T> parameter_entry(std::string name, std::vector<Index> shape, T* data,
                              const Gradient<Scalar, Rank>& gradient) {
  return parameter_entry(std::move(name), std::move(shape), data, GradientRef<T>(gradient));
}

/// The book's `mask` buffer of a causal layer: (context_length, context_length), derived.
template <typename T>
StateEntry<T> causal_mask_entry(std::string name, Index context_length) {
  return {std::move(name), {context_length, context_length}, nullptr, StateKind::causal_mask, {}};
}

/// Gives a layer both forms of visit_state, mutable (entries of Scalar) and const (entries of
/// const Scalar), from one static `Derived::visit_entries(self, visit, prefix)` that is written
/// once for either const-ness of `self`. A layer derives from StateVisitable<itself> and makes
/// it a friend; no virtual functions are involved.
template <typename Derived>
class StateVisitable {
 public:
  /// Calls `visit(entry)` once per state entry, names prefixed with `prefix`.
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    Derived::visit_entries(static_cast<Derived&>(*this), visit, prefix);
  }
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") const {
    Derived::visit_entries(static_cast<const Derived&>(*this), visit, prefix);
  }
};

namespace detail {

inline std::string shape_string(const std::vector<Index>& shape) {
  std::string text = "(";
  for (std::size_t d = 0; d < shape.size(); ++d) {
    text += (d ? ", " : "") + std::to_string(shape[d]);
  }
  return text + ")";
}

template <typename Scalar>
Scalar causal_mask_value(const std::vector<Index>& shape, Index flat) {
  const Index cols = shape.back();
  return (flat % cols) > (flat / cols) ? Scalar(1) : Scalar(0);
}

}  // namespace detail

/// A copy of every entry of `layer`, parameters and the book's `mask` buffers, by PyTorch name.
template <typename Layer, typename Scalar = typename Layer::Scalar>
StateDict<Scalar> state_dict(const Layer& layer) {
  StateDict<Scalar> dict;
  layer.visit_state([&](const StateEntry<const Scalar>& entry) {
    NamedTensor<Scalar>& tensor = dict[entry.name];
    tensor.shape = entry.shape;
    tensor.values.resize(static_cast<std::size_t>(entry.numel()));
    for (Index i = 0; i < entry.numel(); ++i) {
      tensor.values[i] = entry.kind == StateKind::parameter
                             ? entry.data[i]
                             : detail::causal_mask_value<Scalar>(entry.shape, i);
    }
  });
  return dict;
}

/// Loads parameters by PyTorch name, strictly: every parameter must be present with its exact
/// shape, and no unknown name may appear. The book's `mask` buffers may be present or absent;
/// when present they must be the causal mask of the layer's context_length (they are derived,
/// not loaded). Nothing is modified unless the whole dict is valid.
/// @throws std::invalid_argument naming the missing, unexpected or mis-shaped entries.
template <typename Layer, typename Scalar = typename Layer::Scalar>
void load_state_dict(Layer& layer, const StateDict<Scalar>& dict) {
  std::vector<StateEntry<Scalar>> entries;
  layer.visit_state([&](const StateEntry<Scalar>& entry) { entries.push_back(entry); });
  std::set<std::string> known;
  std::string problems;
  for (const auto& entry : entries) {
    known.insert(entry.name);
    const auto found = dict.find(entry.name);
    if (found == dict.end()) {
      if (entry.kind == StateKind::parameter) {
        problems += "\n  missing key '" + entry.name + "' " + detail::shape_string(entry.shape);
      }
      continue;
    }
    const NamedTensor<Scalar>& tensor = found->second;
    if (tensor.shape != entry.shape || static_cast<Index>(tensor.values.size()) != entry.numel()) {
      problems += "\n  '" + entry.name + "' has shape " + detail::shape_string(tensor.shape) +
                  " but the layer expects " + detail::shape_string(entry.shape);
      continue;
    }
    if (entry.kind == StateKind::causal_mask) {
      for (Index i = 0; i < entry.numel(); ++i) {
        if (tensor.values[i] != detail::causal_mask_value<Scalar>(entry.shape, i)) {
          problems += "\n  '" + entry.name + "' is not the causal mask triu(ones, diagonal=1)";
          break;
        }
      }
    }
  }
  for (const auto& [name, tensor] : dict) {
    if (known.count(name) == 0) {
      problems += "\n  unexpected key '" + name + "' " + detail::shape_string(tensor.shape);
    }
  }
  if (!problems.empty()) throw std::invalid_argument("load_state_dict:" + problems);
  for (const auto& entry : entries) {
    if (entry.kind != StateKind::parameter) continue;
    const auto& values = dict.at(entry.name).values;
    std::copy(values.begin(), values.end(), entry.data);
  }
}

/// Sets every parameter gradient of `layer` to zero (backward accumulates into them). A gradient
/// not allocated yet is zero already and stays unallocated.
template <typename Layer>
void zero_grad(Layer& layer) {
  using Scalar = typename Layer::Scalar;
  layer.visit_state([](const StateEntry<Scalar>& entry) {
    if (Scalar* grad = entry.grad.if_allocated()) std::fill(grad, grad + entry.numel(), Scalar(0));
  });
}

/// A copy of every parameter gradient, by the parameter's PyTorch name (zeros for a gradient
/// nothing has allocated yet).
template <typename Layer, typename Scalar = typename Layer::Scalar>
StateDict<Scalar> gradients(const Layer& layer) {
  StateDict<Scalar> dict;
  layer.visit_state([&](const StateEntry<const Scalar>& entry) {
    if (entry.kind != StateKind::parameter) return;
    const Scalar* grad = entry.grad.if_allocated();
    dict[entry.name] = NamedTensor<Scalar>{
        entry.shape, grad != nullptr ? std::vector<Scalar>(grad, grad + entry.numel())
                                     : std::vector<Scalar>(entry.numel(), Scalar(0))};
  });
  return dict;
}

/// Number of trainable scalars (buffers excluded), as sum(p.numel() for p in parameters()).
template <typename Layer>
Index parameter_count(const Layer& layer) {
  using Scalar = typename Layer::Scalar;
  Index count = 0;
  layer.visit_state([&](const StateEntry<const Scalar>& entry) {
    if (entry.kind == StateKind::parameter) count += entry.numel();
  });
  return count;
}

}  // namespace attn

#endif  // ATTN_STATE_STATE_DICT_HPP
