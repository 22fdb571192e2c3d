// attn/autocast.hpp: the arithmetic of attn's products for a scope, as torch.autocast chooses it.
#ifndef ATTN_AUTOCAST_HPP
#define ATTN_AUTOCAST_HPP

namespace attn {

/// The arithmetic of the products of Linear layers (and the layers and models built on them).
/// `scalar`: the layer's Scalar throughout. `bfloat16`: torch.autocast(device_type="cpu",
/// dtype=torch.bfloat16)'s: inputs and weights rounded to bfloat16, their products summed in
/// float. On a CPU with AVX512_BF16 (and attn::compiled, or a build for such a CPU) this runs on
/// `vdpbf16ps`, up to twice float's rate; elsewhere the same rounded values are multiplied in
/// float (the same products, summed in another order). Unlike PyTorch, outputs, biases and
/// gradients stay in the layer's Scalar (autocast rounds Linear's output to bfloat16 too), and
/// float weights stay the master copy: training under autocast updates them in full precision.
/// A product takes the arithmetic of the scope it runs in: run a backward in the same scope as
/// its forward (Linear's backward is stateless and follows the scope; the fused attention's
/// recomputes its forward's weights, so it keeps the forward's choice, in its cache).
enum class Compute { scalar, bfloat16 };

namespace detail {
inline Compute& autocast_state() {
  thread_local Compute compute = Compute::scalar;
  return compute;
}
}  // namespace detail

/// The arithmetic the calling thread's products use now: the innermost live Autocast's, else
/// Compute::scalar.
inline Compute autocast_compute() {
  return detail::autocast_state();
}

/// Sets the arithmetic of this thread's products until the scope ends, restoring the previous
/// one then; nests as torch.autocast does:
///
///     {
///       attn::Autocast autocast(attn::Compute::bfloat16);
///       logits = model.forward(ids);  // bfloat16 products, float sums
///     }
class Autocast {
 public:
  explicit Autocast(Compute compute = Compute::bfloat16) : previous_(detail::autocast_state()) {
    detail::autocast_state() = compute;
  }
  ~Autocast() { detail::autocast_state() = previous_; }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  Compute previous_;
};

}  // namespace attn

#endif  // ATTN_AUTOCAST_HPP
