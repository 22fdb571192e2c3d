// attn/kernels/detail/tile_gemm.hpp: the matrix product of the fused attention's tiles, written
// on Eigen's packet primitives, so that every tile product runs near the machine's FMA rate.
//
// Why not detail::gemm: a general GEMM packs both operands into its own layout before it
// multiplies. In attention one side of every tile product is only as wide as a head (D = 64),
// so each packed element is used just D times, and packing costs about half the multiply (it
// was 27 % of the fused forward's time under Eigen's GEMM). Here B is read in place, row by
// row, and A element by element as a broadcast: C(m, n) = alpha A(m, k) B(k, n) with R rows of C
// by Cp packets of columns held in registers across the whole k loop (R * Cp accumulators plus
// Cp loads of B and one broadcast of A fill the vector registers), which is the classic
// register-blocked inner kernel of GotoBLAS-style GEMMs, without their packing stage.
// A is addressed as a[i * a_row + l * a_col], so one kernel reads A or its transpose; B's rows
// (k of them, n elements each) must be unit-stride: a row-major operand (V, K, dO, Q rows), or a
// transposed operand the caller packed once per tile (K^T for the scores). Private to the kernels.
#ifndef ATTN_KERNELS_DETAIL_TILE_GEMM_HPP
#define ATTN_KERNELS_DETAIL_TILE_GEMM_HPP

#include <type_traits>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/detail/bfloat16_dot.hpp"
#include "attn/tensor/bfloat16.hpp"
#include "attn/tensor/eigen_interop.hpp"

namespace attn::detail {

/// Register blocking for Scalar: rows of C and packets of columns kept in registers. With 32
/// vector registers (AVX-512) 6 x 4 accumulators, with 16 (SSE, AVX2) 4 x 3.
template <typename Scalar>
struct TileBlocking {
  using Packet = typename Eigen::internal::packet_traits<Scalar>::type;
  static constexpr Index packet = Eigen::internal::unpacket_traits<Packet>::size;
#ifdef EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS
  static constexpr bool wide_register_file = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32;
#else
  static constexpr bool wide_register_file = false;
#endif
  static constexpr int rows = wide_register_file ? 6 : 4;
  static constexpr int packets = wide_register_file ? 4 : 3;
};

/// C block (R rows, P packets of columns) = alpha A B (+ C when accumulating), k terms.
template <typename Scalar, int R, int P>
void tile_gemm_block(Index k, Scalar alpha, const Scalar* a, Index a_row, Index a_col,
                     const Scalar* b, Index ldb, bool accumulate, Scalar* c, Index ldc) {
  using Packet = typename TileBlocking<Scalar>::Packet;
  constexpr Index width = TileBlocking<Scalar>::packet;
  namespace ei = Eigen::internal;
  Packet acc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) acc[r][p] = ei::pset1<Packet>(Scalar(0));
  }
  for (Index l = 0; l < k; ++l) {
    Packet row[P];
    for (int p = 0; p < P; ++p) row[p] = ei::ploadu<Packet>(b + l * ldb + p * width);
    for (int r = 0; r < R; ++r) {
      const Packet broadcast = ei::pset1<Packet>(a[r * a_row + l * a_col]);
      for (int p = 0; p < P; ++p) acc[r][p] = ei::pmadd(broadcast, row[p], acc[r][p]);
    }
  }
  const Packet scale = ei::pset1<Packet>(alpha);
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) {
      Scalar* target = c + r * ldc + p * width;
      Packet value = ei::pmul(scale, acc[r][p]);
      if (accumulate) value = ei::padd(value, ei::ploadu<Packet>(target));
      ei::pstoreu(target, value);
    }
  }
}

/// The same for R rows and the last columns (fewer than a packet), through Eigen's product on
/// strided maps: with one column left (a single query when decoding, scores of keys by one
/// query) that is a matrix-vector product, vectorised along k, where a scalar loop would leave
/// the whole score product unvectorised.
template <typename Scalar>
void tile_gemm_scalar(Index rows, Index cols, Index k, Scalar alpha, const Scalar* a, Index a_row,
                      Index a_col, const Scalar* b, Index ldb, bool accumulate, Scalar* c,
                      Index ldc) {
  using Strided = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
  using Outer = Eigen::OuterStride<>;
  const Eigen::Map<const RowMatrix<Scalar>, Eigen::Unaligned, Strided> A(a, rows, k,
                                                                         Strided(a_row, a_col));
  const Eigen::Map<const RowMatrix<Scalar>, Eigen::Unaligned, Outer> B(b, k, cols, Outer(ldb));
  Eigen::Map<RowMatrix<Scalar>, Eigen::Unaligned, Outer> C(c, rows, cols, Outer(ldc));
  if (accumulate) {
    C.noalias() += alpha * (A * B);
  } else {
    C.noalias() = alpha * (A * B);
  }
}

/// All column blocks of R rows of C: P packets at a time, then single packets, then the rest.
template <typename Scalar, int R>
void tile_gemm_rows(Index n, Index k, Scalar alpha, const Scalar* a, Index a_row, Index a_col,
                    const Scalar* b, Index ldb, bool accumulate, Scalar* c, Index ldc) {
  constexpr int P = TileBlocking<Scalar>::packets;
  constexpr Index width = TileBlocking<Scalar>::packet;
  Index j = 0;
  for (; j + P * width <= n; j += P * width) {
    tile_gemm_block<Scalar, R, P>(k, alpha, a, a_row, a_col, b + j, ldb, accumulate, c + j, ldc);
  }
  for (; j + width <= n; j += width) {
    tile_gemm_block<Scalar, R, 1>(k, alpha, a, a_row, a_col, b + j, ldb, accumulate, c + j, ldc);
  }
  if (j < n) {
    tile_gemm_scalar(Index{R}, n - j, k, alpha, a, a_row, a_col, b + j, ldb, accumulate, c + j,
                     ldc);
  }
}

/// C(m, n) = alpha A(m, k) B(k, n), plus C when `accumulate`. A(i, l) is a[i * a_row + l * a_col];
/// B(l, j) is b[l * ldb + j] (unit-stride rows); C is row-major with row stride ldc. Runs on the
/// calling thread; allocates nothing.
template <typename Scalar>
void tile_gemm(Index m, Index n, Index k, Scalar alpha, const Scalar* a, Index a_row, Index a_col,
               const Scalar* b, Index ldb, bool accumulate, Scalar* c, Index ldc) {
  constexpr int R = TileBlocking<Scalar>::rows;
  Index i = 0;
  for (; i + R <= m; i += R) {
    tile_gemm_rows<Scalar, R>(n, k, alpha, a + i * a_row, a_row, a_col, b, ldb, accumulate,
                              c + i * ldc, ldc);
  }
  for (; i < m; ++i) {
    tile_gemm_rows<Scalar, 1>(n, k, alpha, a + i * a_row, a_row, a_col, b, ldb, accumulate,
                              c + i * ldc, ldc);
  }
}

/// tile_gemm in bfloat16 arithmetic (torch.autocast's): A and B rounded to bfloat16, their
/// products summed in float. On vdpbf16ps (bfloat16_dot.hpp) where this compilation has it: A is
/// rounded into pair words along its contiguous dimension, B into pair-rows, in buffers each
/// thread keeps; elsewhere the same rounded values go through tile_gemm.
template <typename Scalar>
void tile_gemm_bfloat16(Index m, Index n, Index k, Scalar alpha, const Scalar* a, Index a_row,
                        Index a_col, const Scalar* b, Index ldb, bool accumulate, Scalar* c,
                        Index ldc) {
#ifdef ATTN_BFLOAT16_DOT
  if constexpr (std::is_same_v<Scalar, float>) {
    thread_local std::vector<std::uint32_t> a_words;
    thread_local std::vector<std::uint16_t> b_pairs;
    const Index pairs = (k + 1) / 2;
    a_words.resize(static_cast<std::size_t>(m * pairs));
    b_pairs.resize(static_cast<std::size_t>(pairs * n * 2));
    // A (m, k): words along the dimension A is contiguous in; B (k, n): pair-rows, word (p, j)
    // holding B(2p, j) and B(2p + 1, j), which are the words of B^T by columns.
    const bool by_columns = a_row == 1 && a_col != 1;
    const Index word_row = by_columns ? 1 : pairs, word_pair = by_columns ? m : 1;
    round_to_pair_words(a, a_row, a_col, k, 0, m, 0, pairs, a_words.data(), word_row, word_pair);
    round_to_pair_words(b, Index{1}, ldb, k, 0, n, 0, pairs,
                        reinterpret_cast<std::uint32_t*>(b_pairs.data()), Index{1}, n);
    bfloat16_dot_block(m, n, pairs, a_words.data(), word_row, word_pair, b_pairs.data(), alpha, c,
                       ldc, accumulate);
    return;
  }
#endif
  thread_local std::vector<Scalar> a_rounded, b_rounded;
  a_rounded.resize(static_cast<std::size_t>(m * k));
  b_rounded.resize(static_cast<std::size_t>(k * n));
  for (Index i = 0; i < m; ++i) {
    for (Index l = 0; l < k; ++l)
      a_rounded[i * k + l] = round_to_bfloat16(a[i * a_row + l * a_col]);
  }
  for (Index l = 0; l < k; ++l) {
    for (Index j = 0; j < n; ++j) b_rounded[l * n + j] = round_to_bfloat16(b[l * ldb + j]);
  }
  tile_gemm(m, n, k, alpha, a_rounded.data(), k, Index{1}, b_rounded.data(), n, accumulate, c, ldc);
}

/// tile_gemm, in bfloat16 arithmetic when `bfloat16_products` (the fused attention's option).
template <typename Scalar>
void tile_product(bool bfloat16_products, Index m, Index n, Index k, Scalar alpha, const Scalar* a,
                  Index a_row, Index a_col, const Scalar* b, Index ldb, bool accumulate, Scalar* c,
                  Index ldc) {
  if (bfloat16_products) {
    tile_gemm_bfloat16(m, n, k, alpha, a, a_row, a_col, b, ldb, accumulate, c, ldc);
  } else {
    tile_gemm(m, n, k, alpha, a, a_row, a_col, b, ldb, accumulate, c, ldc);
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_TILE_GEMM_HPP
