// attn/models/next_token.hpp: how generation picks the next token from the last position's
// logits, as the book's generate() does (chapter 5): greedy argmax, or temperature scaling and
// top-k filtering followed by a draw from the softmax. With the same seed, the draw equals
// PyTorch 1.13's torch.multinomial(probs, 1) on the CPU, which for one sample takes
// argmax(probs / E) with E ~ Exp(1) drawn per element (the "exponential race": the smallest of
// independent Exp(rate p_i) variables is the i with probability p_i); E = -log(1 - u) from one
// double uniform u per element, in row-major order, as Tensor.exponential_() draws.
#ifndef ATTN_MODELS_NEXT_TOKEN_HPP
#define ATTN_MODELS_NEXT_TOKEN_HPP

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// The book's generate() arguments that choose a token (chapter 5.3).
struct SamplingOptions {
  /// 0 picks the most likely token (argmax, no random draw); > 0 divides the logits by it and
  /// draws from their softmax.
  double temperature = 0;
  /// 0 keeps every token; k > 0 keeps the tokens whose logit is at least the k-th largest
  /// (ties with it included, as torch.where(logits < min_val, -inf, logits) does).
  Index top_k = 0;
};

namespace detail {

inline void validate_sampling(const SamplingOptions& options, Index vocab_size) {
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature)) {
    throw std::invalid_argument(concat("SamplingOptions: temperature (", options.temperature,
                                       ") must be finite and >= 0 (0 means greedy)"));
  }
  if (options.top_k < 0 || options.top_k > vocab_size) {
    throw std::invalid_argument(concat("SamplingOptions: top_k (", options.top_k,
                                       ") must be in [0, vocab_size] = [0, ", vocab_size,
                                       "] (0 keeps every token)"));
  }
}

/// torch.topk(row, k).values[-1]: the k-th largest value of the row.
template <typename Scalar>
Scalar kth_largest(const Scalar* row, Index size, Index k) {
  std::vector<Scalar> values(row, row + size);
  std::nth_element(values.begin(), values.begin() + (k - 1), values.end(), std::greater<>());
  return values[static_cast<std::size_t>(k - 1)];
}

}  // namespace detail

/// Picks one token per row of `logits` (B, V), the logits of each sequence's last position.
/// Greedy (temperature 0) takes the first index of the largest logit, as torch.argmax; with a
/// temperature it keeps the top_k logits, scales them by 1 / temperature, and draws from their
/// softmax with `generator`, B * V exponential draws per call (see the file comment).
/// @throws std::invalid_argument for a bad option, or a row with a NaN logit or no finite one.
template <typename Scalar>
std::vector<Index> next_tokens(const TensorView<const Scalar, 2>& logits,
                               const SamplingOptions& options, Generator& generator) {
  const Index rows = logits.size(0), vocab = logits.size(1);
  detail::validate_sampling(options, vocab);
  const detail::Contiguous<Scalar, 2> contiguous(logits);  // copied only if strided
  std::vector<Index> chosen(static_cast<std::size_t>(rows));
  Eigen::Array<Scalar, 1, Eigen::Dynamic> row(vocab);
  for (Index b = 0; b < rows; ++b) {
    row = Eigen::Map<const Eigen::Array<Scalar, 1, Eigen::Dynamic>>(contiguous.data() + b * vocab,
                                                                    vocab);
    if (row.isNaN().any() || !(row.maxCoeff() > -std::numeric_limits<Scalar>::infinity())) {
      throw std::invalid_argument(
          detail::concat("next_tokens: the logits of row ", b, " have a NaN or no finite value"));
    }
    Index best = 0;
    if (options.temperature == 0) {
      row.maxCoeff(&best);
    } else {
      if (options.top_k > 0) {
        const Scalar min_kept = detail::kth_largest(row.data(), vocab, options.top_k);
        row = (row < min_kept).select(-std::numeric_limits<Scalar>::infinity(), row);
      }
      row /= static_cast<Scalar>(options.temperature);
      detail::softmax_row_inplace(row.matrix());
      // argmax(p / E): the division as torch does it, in Scalar, E rounded to Scalar first.
      for (Index j = 0; j < vocab; ++j) {
        const double u = generator.uniform<double>();
        row[j] /= static_cast<Scalar>(-std::log(1.0 - u));
      }
      row.maxCoeff(&best);
    }
    chosen[static_cast<std::size_t>(b)] = best;
  }
  return chosen;
}

}  // namespace attn

#endif  // ATTN_MODELS_NEXT_TOKEN_HPP
