// attn/kernels/dropout.hpp: inverted dropout, stage 4 of the shared attention kernel.
//
// In training, each element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expected value is unchanged and evaluation needs no rescaling (Srivastava et al., 2014).
// Randomness comes only from the Generator passed in.
//
// Two kinds of mask. The reference path draws PyTorch's masks from the Generator in memory order
// (dropout_inplace), so Generator(s) reproduces torch.manual_seed(s). The fused path never holds
// a whole (T, S) matrix and visits it tile by tile, in a different order in the backward, so it
// uses PositionalDropout: whether weight (query i, key j) of leading position n is kept is a
// hash of (seed, n, i, j), one seed drawn from the Generator per forward. Same distribution,
// different masks; nothing stored between forward and backward but the seed.
#ifndef ATTN_KERNELS_DROPOUT_HPP
#define ATTN_KERNELS_DROPOUT_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "attn/config.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {
namespace detail {

/// @throws std::invalid_argument unless 0 <= p < 1 (p = 1 would drop everything and divide by 0).
template <typename Scalar>
void validate_dropout(Scalar p, const char* who) {
  if (!(p >= Scalar(0) && p < Scalar(1))) {
    throw std::invalid_argument(concat(who, ": dropout (", p, ") must be a probability in [0, 1)"));
  }
}

/// Drops each element of an Eigen matrix with probability p, scaling the kept ones, row by row.
/// The draws are PyTorch's: nn.Dropout on CPU fills a mask with bernoulli_(1 - p), which keeps
/// an element when a double uniform (53 bits from two 32-bit draws, whatever the tensor's type)
/// is below 1 - p, in memory order. So Generator(s) gives torch.manual_seed(s)'s masks.
template <typename Derived>
void dropout_inplace(Eigen::MatrixBase<Derived>& values, typename Derived::Scalar p,
                     Generator& generator) {
  using Scalar = typename Derived::Scalar;
  const Scalar keep_scale = Scalar(1) / (Scalar(1) - p);
  const double keep_probability = 1.0 - static_cast<double>(p);
  for (Index i = 0; i < values.rows(); ++i) {
    for (Index j = 0; j < values.cols(); ++j) {
      const bool keep = generator.uniform<double>() < keep_probability;
      values(i, j) = keep ? values(i, j) * keep_scale : Scalar(0);
    }
  }
}

/// The backward of dropout_inplace: replays the same draws (a copy of the generator as it was
/// before the forward) and applies the same mask and scale to the gradient.
template <typename Derived>
void dropout_backward_inplace(Eigen::MatrixBase<Derived>& gradient, typename Derived::Scalar p,
                              Generator& replay) {
  dropout_inplace(gradient, p, replay);
}

/// Counter-based dropout for the fused path: a pure function of (seed, n, query, key), evaluated
/// for a row of queries at a time. The 64-bit key of a query row comes from splitmix64 (Steele et
/// al., 2014); an element's 32 bits from two rounds of MurmurHash3's 32-bit finaliser over that
/// key and the key index, cheap enough to vectorise across a row of queries, and a weight is
/// kept when those bits are at or above p * 2^32.
template <typename Scalar>
class PositionalDropout {
 public:
  PositionalDropout(Scalar p, std::uint64_t seed)
      : seed_(seed),
        threshold_(static_cast<std::uint32_t>(
            std::min(std::ceil(static_cast<double>(p) * 4294967296.0), 4294967295.0))),
        keep_scale_(Scalar(1) / (Scalar(1) - p)) {}

  /// The keys of query rows [query0, query0 + rows) of leading position n, as two 32-bit halves.
  void row_keys(Index n, Index query0, Index rows, std::uint32_t* low, std::uint32_t* high) const {
    for (Index i = 0; i < rows; ++i) {
      const std::uint64_t key =
          splitmix64(seed_ ^ splitmix64(static_cast<std::uint64_t>(n) << 32 ^
                                        static_cast<std::uint64_t>(query0 + i)));
      low[i] = static_cast<std::uint32_t>(key);
      high[i] = static_cast<std::uint32_t>(key >> 32);
    }
  }

  /// Writes into multipliers[i] 1 / (1 - p) if weight (query i of the rows, `key`) is kept, else
  /// 0, for `rows` queries whose keys row_keys gave.
  void multipliers(Index key, Index rows, const std::uint32_t* low, const std::uint32_t* high,
                   Scalar* multipliers) const {
    // Locals and a branch-free select, so that the loop vectorises (a member read under a
    // condition does not).
    const std::uint32_t column = static_cast<std::uint32_t>(key) * 0x9E3779B9U;
    const std::uint32_t threshold = threshold_;
    const Scalar scale = keep_scale_;
    for (Index i = 0; i < rows; ++i) {
      const std::uint32_t bits = fmix32(fmix32(low[i] + column) ^ high[i]);
      multipliers[i] = static_cast<Scalar>(bits >= threshold) * scale;
    }
  }

  /// Whether weight (query, key) of leading position n is kept: the same function, one element.
  bool keeps(Index n, Index query, Index key) const {
    std::uint32_t low = 0, high = 0;
    Scalar multiplier(0);
    row_keys(n, query, 1, &low, &high);
    multipliers(key, 1, &low, &high, &multiplier);
    return multiplier != Scalar(0);
  }

  Scalar keep_scale() const { return keep_scale_; }

 private:
  static std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }
  static std::uint32_t fmix32(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x85EBCA6BU;
    x ^= x >> 13;
    x *= 0xC2B2AE35U;
    return x ^ (x >> 16);
  }

  std::uint64_t seed_;
  std::uint32_t threshold_;
  Scalar keep_scale_;
};

/// The seed of one fused forward's PositionalDropout: two 32-bit draws from the generator.
inline std::uint64_t draw_dropout_seed(Generator& generator) {
  const std::uint64_t high = generator.next_u32();
  return high << 32 | generator.next_u32();
}

}  // namespace detail

/// Inverted dropout of a 2-D view in place: each element is zeroed with probability p and the
/// rest are multiplied by 1 / (1 - p). With `training == false` it does nothing (eval mode).
/// @param values   (rows, cols), unit-stride columns.
/// @param p        drop probability in [0, 1).
/// @param generator the only source of randomness: the same seed gives the same mask.
/// @throws std::invalid_argument if p is outside [0, 1) or NaN.
template <typename Scalar>
void dropout(const TensorView<Scalar, 2>& values, Scalar p, bool training, Generator& generator) {
  detail::validate_dropout(p, "dropout");
  if (!training || p == Scalar(0)) return;
  auto matrix = as_matrix(values);
  detail::dropout_inplace(matrix, p, generator);
}

namespace detail {

/// nn.Dropout(p) in training mode on a contiguous tensor, in place, in memory order (PyTorch's
/// masks), for a layer that drops a whole activation (GPTModel's drop_emb, TransformerBlock's
/// shortcut branches). When `replay` is given it records the generator as it stood before the
/// draws, so that the backward draws the same mask again (dropout_replayed_backward) instead of
/// storing it.
template <typename Scalar, int Rank>
void dropout_recording(const TensorView<Scalar, Rank>& x, Scalar p, Generator& generator,
                       std::optional<Generator>* replay) {
  if (replay != nullptr) *replay = generator;
  dropout(TensorView<Scalar, 2>(x.data(), {1, x.numel()}, {x.numel(), 1}), p, true, generator);
}

/// The backward of dropout_recording, in place on the (contiguous) gradient: the forward's mask
/// and 1 / (1 - p) scale, drawn again from the recorded generator.
template <typename Scalar, int Rank>
void dropout_replayed_backward(const TensorView<Scalar, Rank>& grad, Scalar p,
                               const Generator& replay) {
  Generator draws = replay;
  Eigen::Map<RowMatrix<Scalar>> values(grad.data(), 1, grad.numel());
  dropout_backward_inplace(values, p, draws);
}

}  // namespace detail
}  // namespace attn

#endif  // ATTN_KERNELS_DROPOUT_HPP
