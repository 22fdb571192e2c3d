// attn/random/generator.hpp: Generator, the explicitly passed, seedable source of randomness for
// weight initialisation and dropout. There is no global generator in attn.
//
// It is a Mersenne Twister 19937 seeded like PyTorch's CPU generator, and turns draws into
// uniforms the way torch.rand does (float: low 24 bits of one 32-bit draw times 2^-24; double:
// low 53 bits of two draws, first draw high, times 2^-53), so `Generator(123)` followed by uniform
// draws reproduces `torch.manual_seed(123); torch.rand(...)`. normal_fill fills a buffer as
// torch.randn / Tensor.normal_ fill a contiguous tensor of that many elements.
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
  void manual_seed(std::uint64_t seed) {
    engine_.seed(static_cast<std::uint32_t>(seed));
    has_next_normal_ = false;
  }

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
  /// torch.randn, whose vectorised sampler draws in another order: normal_fill is.
  template <typename Scalar>
  Scalar normal() {
    const double u1 = 1.0 - uniform<double>();  // (0, 1]: log stays finite
    const double u2 = uniform<double>();
    return static_cast<Scalar>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

  /// Fills data[0, count) with normal numbers of mean `mean` and standard deviation `std` as
  /// `torch.manual_seed(s); torch.randn(count) * std + mean` (or Tensor.normal_(mean, std) on a
  /// contiguous tensor of count elements) does, draw for draw:
  /// - count < 16: one at a time, each pair from two double uniforms u1, u2 (Box-Muller:
  ///   r = sqrt(-2 log(1 - u2)), r cos(2 pi u1), then r sin(2 pi u1), which is kept for the next
  ///   draw as PyTorch's generator keeps it, across calls, until manual_seed);
  /// - count >= 16: count uniforms of the Scalar type first, then Box-Muller on each block of 16
  ///   (u1 = 1 - data[j], u2 = data[j + 8], j < 8, giving r cos and r sin in place), and when
  ///   count is not a multiple of 16 the last 16 values are drawn and transformed again.
  /// Doubles equal PyTorch's bit for bit; floats within a few ulp, as PyTorch's AVX2 build
  /// takes log, sin and cos of the 16-value blocks from Sleef's vectorised functions.
  template <typename Scalar>
  void normal_fill(Scalar* data, Index count, Scalar mean = Scalar(0), Scalar std = Scalar(1)) {
    static_assert(std::is_floating_point_v<Scalar>, "normal_fill draws float or double.");
    constexpr double two_pi = 6.283185307179586;
    if (count < 16) {
      for (Index i = 0; i < count; ++i) {
        double value = next_normal_;
        if (has_next_normal_) {
          has_next_normal_ = false;
        } else {
          const double u1 = uniform<double>(), u2 = uniform<double>();
          const double radius = std::sqrt(-2.0 * std::log(1.0 - u2));
          next_normal_ = radius * std::sin(two_pi * u1);
          has_next_normal_ = true;
          value = radius * std::cos(two_pi * u1);
        }
        data[i] = static_cast<Scalar>(value * static_cast<double>(std) + static_cast<double>(mean));
      }
      return;
    }
    for (Index i = 0; i < count; ++i) data[i] = uniform<Scalar>();
    const auto block_of_16 = [&](Scalar* block) {
      for (int j = 0; j < 8; ++j) {
        const Scalar u1 = Scalar(1) - block[j], u2 = block[j + 8];
        const Scalar radius = std::sqrt(Scalar(-2) * std::log(u1));
        const Scalar theta = static_cast<Scalar>(two_pi) * u2;
        block[j] = radius * std::cos(theta) * std + mean;
        block[j + 8] = radius * std::sin(theta) * std + mean;
      }
    };
    for (Index i = 0; i + 16 <= count; i += 16) block_of_16(data + i);
    if (count % 16 != 0) {
      Scalar* last = data + count - 16;
      for (int i = 0; i < 16; ++i) last[i] = uniform<Scalar>();
      block_of_16(last);
    }
  }

  /// A uniform number in [from, to), as torch.Tensor.uniform_(from, to).
  template <typename Scalar>
  Scalar uniform(Scalar from, Scalar to) {
    return uniform<Scalar>() * (to - from) + from;
  }

 private:
  std::mt19937 engine_;
  // The second value of a one-at-a-time Box-Muller pair, as PyTorch's CPU generator keeps it.
  double next_normal_ = 0;
  bool has_next_normal_ = false;
};

/// Passed where a layer takes its Generator, `attn::skip_init` builds the layer drawing nothing:
/// parameters it would draw are zero (a LayerNorm's are its ones and zeros either way), as
/// PyTorch's torch.nn.utils.skip_init leaves them unset: for code that
/// overwrites every parameter next, as a checkpoint loader does (drawing GPT-2 124M's weights
/// takes about a second). Dropout generators then start from the default seed.
struct SkipInit {
  explicit constexpr SkipInit() = default;
};
inline constexpr SkipInit skip_init{};

/// How layers take their Generator: a named one, which they draw from and leave advanced (so
/// the next layer continues the sequence, as successive nn.Module constructions do after one
/// torch.manual_seed), or a temporary such as `Generator(123)`, which lives until the end of the
/// constructor call, or attn::skip_init. One parameter type serves all, so no layer needs a
/// constructor pair.
class GeneratorRef {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit on purpose, see above
  GeneratorRef(Generator& generator) : generator_(&generator) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  GeneratorRef(Generator&& generator) : generator_(&generator) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  GeneratorRef(SkipInit /*skip*/) {}

  /// Whether the parameters stay zero (attn::skip_init): then nothing may be drawn.
  bool skips_init() const { return generator_ == nullptr; }
  /// The generator to draw from; not for attn::skip_init.
  Generator& get() const {
    ATTN_ASSERT(generator_ != nullptr);
    return *generator_;
  }

 private:
  Generator* generator_ = nullptr;
};

}  // namespace attn

#endif  // ATTN_RANDOM_GENERATOR_HPP
