// attn/kernels/detail/bfloat16_matrix.hpp: a weight matrix stored in bfloat16, packed for the
// products that read each weight once (decoding a token): 2 bytes a weight instead of 4, so
// half the time the memory bandwidth sets.
#ifndef ATTN_KERNELS_DETAIL_BFLOAT16_MATRIX_HPP
#define ATTN_KERNELS_DETAIL_BFLOAT16_MATRIX_HPP

#include <cstdint>

#include "attn/config.hpp"
#include "attn/kernels/detail/dispatch.hpp"
#include "attn/tensor/bfloat16.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// The layout of a BFloat16Matrix (below): rows in groups of 4, the last group padded with zero
/// rows; columns in chunks of 32, the last chunk padded with zeros; a group stores chunk 0 of its
/// four rows one after another, then chunk 1 of the four, and so on.
struct BFloat16Packing {
  static constexpr Index group_rows = 4;
  static constexpr Index chunk_cols = 32;
  Index rows, cols;

  Index groups() const { return (rows + group_rows - 1) / group_rows; }
  Index chunks() const { return (cols + chunk_cols - 1) / chunk_cols; }
  Index size() const { return groups() * chunks() * group_rows * chunk_cols; }
  Index offset(Index r, Index c) const {
    const Index group = r / group_rows, chunk = c / chunk_cols;
    return ((group * chunks() + chunk) * group_rows + r % group_rows) * chunk_cols + c % chunk_cols;
  }
};

/// y[r] = W(r, :) x for the (up to) 4 rows r of group g of the packed W.
template <typename Scalar>
void bfloat16_group_product(const BFloat16Packing& packing, const std::uint16_t* packed, Index g,
                            const Scalar* x, Scalar* y) {
  constexpr Index group_rows = BFloat16Packing::group_rows,
                  chunk_cols = BFloat16Packing::chunk_cols;
  Scalar sums[group_rows][chunk_cols] = {};
  const std::uint16_t* w = packed + g * packing.chunks() * group_rows * chunk_cols;
  const Index full_chunks = packing.cols / chunk_cols;
  for (Index chunk = 0; chunk < full_chunks; ++chunk, w += group_rows * chunk_cols) {
    const Scalar* xc = x + chunk * chunk_cols;
    for (Index q = 0; q < group_rows; ++q) {
      for (Index t = 0; t < chunk_cols; ++t) {
        sums[q][t] += static_cast<Scalar>(bfloat16_to_float(w[q * chunk_cols + t])) * xc[t];
      }
    }
  }
  if (full_chunks < packing.chunks()) {  // the last, partial chunk: x ends at cols
    const Scalar* xc = x + full_chunks * chunk_cols;
    const Index tail = packing.cols - full_chunks * chunk_cols;
    for (Index q = 0; q < group_rows; ++q) {
      for (Index t = 0; t < tail; ++t) {
        sums[q][t] += static_cast<Scalar>(bfloat16_to_float(w[q * chunk_cols + t])) * xc[t];
      }
    }
  }
  for (Index q = 0; q < group_rows && g * group_rows + q < packing.rows; ++q) {
    Scalar sum = 0;
    for (Index t = 0; t < chunk_cols; ++t) sum += sums[q][t];
    y[g * group_rows + q] = sum;
  }
}

/// Y (m, rows) = X (m, cols) W^T over a packed W (rows, cols), X and Y row-major with leading
/// dimensions ldx and ldy (and not overlapping); the groups of rows are shared among `threads`.
template <typename Scalar>
void bfloat16_product_kernel(const std::uint16_t* packed, Index rows, Index cols, Index m,
                             const Scalar* x, Index ldx, Scalar* y, Index ldy, int threads) {
  constexpr Index min_groups = 32;  // below it a share is too small to split
  const BFloat16Packing packing{rows, cols};
  for_each_thread_row_block(
      packing.groups(), min_groups, threads, [&](Index, Index group0, Index groups) {
        for (Index g = group0; g < group0 + groups; ++g) {
          for (Index i = 0; i < m; ++i) {
            bfloat16_group_product(packing, packed, g, x + i * ldx, y + i * ldy);
          }
        }
      });
}

/// A (rows, cols) matrix W held as bfloat16 bits, for Y = X W^T with few rows of X.
///
/// Layout: BFloat16Packing. A product then reads its share of W as one forward stream, a 64-byte
/// line per row and chunk, and keeps 4 x 32 independent sums per activation row, which the
/// compiler turns into vector FMAs (AVX-512: 8 registers) without reordering any sum. (With -O3
/// -march=native g++ 12's code streamed within 10 % of a hand-written AVX-512 version in a
/// scratch benchmark here; attn::compiled runs the build for the CPU's level.)
class BFloat16Matrix {
 public:
  static constexpr Index group_rows = BFloat16Packing::group_rows;
  static constexpr Index chunk_cols = BFloat16Packing::chunk_cols;

  BFloat16Matrix() = default;

  /// Packs W (rows, cols), row-major with leading dimension ld, rounding each weight to bfloat16.
  template <typename Scalar>
  BFloat16Matrix(const Scalar* w, Index rows, Index cols, Index ld)
      : packing_{rows, cols}, bits_({packing_.size()}) {  // zeros: the padding
    for (Index r = 0; r < rows; ++r) {
      for (Index c = 0; c < cols; ++c) {
        bits_.data()[packing_.offset(r, c)] = bfloat16_bits(static_cast<float>(w[r * ld + c]));
      }
    }
  }

  bool empty() const { return packing_.rows == 0; }
  Index rows() const { return packing_.rows; }
  Index cols() const { return packing_.cols; }

  /// W(r, c) as float.
  float operator()(Index r, Index c) const {
    return bfloat16_to_float(bits_.data()[packing_.offset(r, c)]);
  }

  /// Y (m, rows) = X (m, cols) W^T, X and Y row-major with leading dimensions ldx and ldy (and
  /// not overlapping), on num_threads() threads: compiled into this program from the headers,
  /// or attn::compiled's kernel for the CPU's level.
  template <typename Scalar>
  void multiply(Index m, const Scalar* x, Index ldx, Scalar* y, Index ldy) const {
    if constexpr (compiled_kernels) {
      dispatched<Scalar>().bfloat16_product(bits_.data(), rows(), cols(), m, x, ldx, y, ldy,
                                            num_threads());
    } else {
      bfloat16_product_kernel(bits_.data(), rows(), cols(), m, x, ldx, y, ldy, num_threads());
    }
  }

 private:
  BFloat16Packing packing_{0, 0};
  Tensor<std::uint16_t, 1> bits_;
};

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_BFLOAT16_MATRIX_HPP
