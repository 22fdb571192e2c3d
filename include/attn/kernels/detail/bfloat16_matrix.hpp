// attn/kernels/detail/bfloat16_matrix.hpp: a weight matrix stored in bfloat16, packed for the
// products that read each weight once (decoding a token): 2 bytes a weight instead of 4, so
// half the time the memory bandwidth sets.
#ifndef ATTN_KERNELS_DETAIL_BFLOAT16_MATRIX_HPP
#define ATTN_KERNELS_DETAIL_BFLOAT16_MATRIX_HPP

#include <cstdint>

#include "attn/config.hpp"
#include "attn/tensor/bfloat16.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// A (rows, cols) matrix W held as bfloat16 bits, for Y = X W^T with few rows of X.
///
/// Layout: rows in groups of 4 (the last group padded with zero rows), columns in chunks of 32
/// (the last chunk padded with zeros); a group stores chunk 0 of its four rows one after another,
/// then chunk 1 of the four, and so on. A product then reads its share of W as one forward
/// stream, a 64-byte line per row and chunk, and keeps 4 x 32 independent sums per activation
/// row, which the compiler turns into vector FMAs (AVX-512: 8 registers) without reordering
/// any sum. (With -O3 -march=native g++ 12's code streamed within 10 % of a hand-written AVX-512
/// version in a scratch benchmark here; a build without AVX-512 gets narrower vectors.)
class BFloat16Matrix {
 public:
  static constexpr Index group_rows = 4;
  static constexpr Index chunk_cols = 32;

  BFloat16Matrix() = default;

  /// Packs W (rows, cols), row-major with leading dimension ld, rounding each weight to bfloat16.
  template <typename Scalar>
  BFloat16Matrix(const Scalar* w, Index rows, Index cols, Index ld)
      : rows_(rows),
        cols_(cols),
        groups_((rows + group_rows - 1) / group_rows),
        chunks_((cols + chunk_cols - 1) / chunk_cols),
        bits_({groups_ * chunks_ * group_rows * chunk_cols}) {  // zeros: the padding
    for (Index r = 0; r < rows; ++r) {
      for (Index c = 0; c < cols; ++c) {
        bits_.data()[offset(r, c)] = bfloat16_bits(static_cast<float>(w[r * ld + c]));
      }
    }
  }

  bool empty() const { return rows_ == 0; }
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }

  /// W(r, c) as float.
  float operator()(Index r, Index c) const { return bfloat16_to_float(bits_.data()[offset(r, c)]); }

  /// Y (m, rows) = X (m, cols) W^T, X and Y row-major with leading dimensions ldx and ldy (and
  /// not overlapping); the groups of rows are shared among the threads.
  template <typename Scalar>
  void multiply(Index m, const Scalar* x, Index ldx, Scalar* y, Index ldy) const;

 private:
  Index offset(Index r, Index c) const {
    const Index group = r / group_rows, chunk = c / chunk_cols;
    return ((group * chunks_ + chunk) * group_rows + r % group_rows) * chunk_cols + c % chunk_cols;
  }

  // y[r] = W(r, :) x for the (up to) 4 rows of group g.
  template <typename Scalar>
  void multiply_group(Index g, const Scalar* x, Scalar* y) const;

  Index rows_ = 0;
  Index cols_ = 0;
  Index groups_ = 0;
  Index chunks_ = 0;
  Tensor<std::uint16_t, 1> bits_;
};

// Defined outside the class, so not inline: libattn_compiled's instantiations are the ones used.
template <typename Scalar>
void BFloat16Matrix::multiply(Index m, const Scalar* x, Index ldx, Scalar* y, Index ldy) const {
  constexpr Index min_groups = 32;  // below it a share is too small to split
  for_each_thread_row_block(groups_, min_groups, [&](Index, Index group0, Index groups) {
    for (Index g = group0; g < group0 + groups; ++g) {
      for (Index i = 0; i < m; ++i) multiply_group(g, x + i * ldx, y + i * ldy);
    }
  });
}

template <typename Scalar>
void BFloat16Matrix::multiply_group(Index g, const Scalar* x, Scalar* y) const {
  Scalar sums[group_rows][chunk_cols] = {};
  const std::uint16_t* w = bits_.data() + g * chunks_ * group_rows * chunk_cols;
  const Index full_chunks = cols_ / chunk_cols;
  for (Index chunk = 0; chunk < full_chunks; ++chunk, w += group_rows * chunk_cols) {
    const Scalar* xc = x + chunk * chunk_cols;
    for (Index q = 0; q < group_rows; ++q) {
      for (Index t = 0; t < chunk_cols; ++t) {
        sums[q][t] += static_cast<Scalar>(bfloat16_to_float(w[q * chunk_cols + t])) * xc[t];
      }
    }
  }
  if (full_chunks < chunks_) {  // the last, partial chunk: x ends at cols_
    const Scalar* xc = x + full_chunks * chunk_cols;
    const Index tail = cols_ - full_chunks * chunk_cols;
    for (Index q = 0; q < group_rows; ++q) {
      for (Index t = 0; t < tail; ++t) {
        sums[q][t] += static_cast<Scalar>(bfloat16_to_float(w[q * chunk_cols + t])) * xc[t];
      }
    }
  }
  for (Index q = 0; q < group_rows && g * group_rows + q < rows_; ++q) {
    Scalar sum = 0;
    for (Index t = 0; t < chunk_cols; ++t) sum += sums[q][t];
    y[g * group_rows + q] = sum;
  }
}

// The instantiations libattn_compiled provides (see ATTN_EXTERN_TEMPLATES in config.hpp).
// NOLINTBEGIN(bugprone-macro-parentheses): prefix is `template` or `extern template`
#define ATTN_BFLOAT16_MATRIX_INSTANTIATIONS_FOR(prefix, Scalar) \
  prefix void BFloat16Matrix::multiply<Scalar>(Index, const Scalar*, Index, Scalar*, Index) const;
#define ATTN_BFLOAT16_MATRIX_INSTANTIATIONS(prefix)      \
  ATTN_BFLOAT16_MATRIX_INSTANTIATIONS_FOR(prefix, float) \
  ATTN_BFLOAT16_MATRIX_INSTANTIATIONS_FOR(prefix, double)
// NOLINTEND(bugprone-macro-parentheses)
ATTN_EXTERN_TEMPLATES(ATTN_BFLOAT16_MATRIX_INSTANTIATIONS)

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_BFLOAT16_MATRIX_HPP
