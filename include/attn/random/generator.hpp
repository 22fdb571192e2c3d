// attn/random/generator.hpp: Generator, the explicitly passed, seedable source of randomness for
// weight initialisation and dropout. There is no global generator in attn.
//
// It is a Mersenne Twister 19937 seeded like PyTorch's CPU generator, and turns draws into
// uniforms the way torch.rand does (float: low 24 bits of one 32-bit draw times 2^-24; double:
// low 53 bits of two draws, first draw high, times 2^-53), so `Generator(123)` followed by uniform
// draws reproduces `torch.manual_seed(123); torch.rand(...)`.
#ifndef ATTN_RANDOM_GENERATOR_HPP
#define ATTN_RANDOM_GENERATOR_HPP

#include <cmath>
#include <cstdint>
#include <random>
#include <type_traits>

#include "attn/config.hpp"

namespace attn {

class Generator {
 public:
  /// PyTorch's default seed, so an unseeded Generator is deterministic too.
  static constexpr std::uint64_t default_seed = 67280421310721ULL;

  explicit Generator(std::uint64_t seed = default_seed) { manual_seed(seed); }

  /// Restarts the sequence, as torch.manual_seed does (the seed is used modulo 2^32).
  void manual_seed(std::uint64_t seed) { engine_.seed(static_cast<std::uint32_t>(seed)); }

  /// The next raw 32-bit draw.
  std::uint32_t next_u32() { return static_cast<std::uint32_t>(engine_()); }

  /// A uniform number in [0, 1), drawn as torch.rand draws for this Scalar type.
  template <typename Scalar>
  Scalar uniform() {
    static_assert(std::is_floating_point_v<Scalar>, "uniform() draws float or double.");
    if constexpr (std::is_same_v<Scalar, float>) {
      return static_cast<float>(next_u32() & ((1U << 24) - 1)) * (1.0f / 16777216.0f);
    } else {
      const std::uint64_t high = next_u32();
      const std::uint64_t low = next_u32();
      const std::uint64_t bits = ((high << 32) | low) & ((std::uint64_t{1} << 53) - 1);
      return static_cast<Scalar>(static_cast<double>(bits) * (1.0 / 9007199254740992.0));
    }
  }

  /// A standard normal number (Box-Muller on two uniforms). Not bit-compatible with
  /// torch.randn, whose vectorised sampler draws in another order.
  template <typename Scalar>
  Scalar normal() {
    const double u1 = 1.0 - uniform<double>();  // (0, 1]: log stays finite
    const double u2 = uniform<double>();
    return static_cast<Scalar>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

  /// A uniform number in [from, to), as torch.Tensor.uniform_(from, to).
  template <typename Scalar>
  Scalar uniform(Scalar from, Scalar to) {
    return uniform<Scalar>() * (to - from) + from;
  }

 private:
  std::mt19937 engine_;
};

/// How layers take their Generator: a named one, which they draw from and leave advanced (so
/// the next layer continues the sequence, as successive nn.Module constructions do after one
/// torch.manual_seed), or a temporary such as `Generator(123)`, which lives until the end of the
/// constructor call. One parameter type serves both, so no layer needs a constructor pair.
class GeneratorRef {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit on purpose, see above
  GeneratorRef(Generator& generator) : generator_(&generator) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  GeneratorRef(Generator&& generator) : generator_(&generator) {}
  Generator& get() const { return *generator_; }

 private:
  Generator* generator_;
};

}  // namespace attn

#endif  // ATTN_RANDOM_GENERATOR_HPP
