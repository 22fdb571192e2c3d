// attn/kernels/detail/bfloat16_dot.hpp: the register tile of attn's bfloat16 products on
// AVX512_BF16's `vdpbf16ps`, which multiplies 16 pairs of bfloat16 by 16 pairs and adds each
// pair's two products to a float sum: 32 products an instruction, twice float FMA's rate, with
// the products exact and the sums in float. Both bfloat16 products use it: over a packed weight
// (bfloat16_matrix.hpp) and the fused attention's tiles (tile_gemm.hpp).
//
// Operands are pairs along the sum's dimension k: A row by row, each pair (k = 2p, 2p + 1) one
// 32-bit word; B as rows of pairs, word j of pair-row p holding B(2p, j) and B(2p + 1, j), so a
// 512-bit load gives 16 columns' pairs, and a broadcast word of A multiplies all of them.
// Private to the kernels.
#ifndef ATTN_KERNELS_DETAIL_BFLOAT16_DOT_HPP
#define ATTN_KERNELS_DETAIL_BFLOAT16_DOT_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "attn/config.hpp"
#include "attn/tensor/bfloat16.hpp"

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define ATTN_BFLOAT16_DOT 1
#endif

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)  // (MSVC's targets all are)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "attn's bfloat16 kernels read a pair of bfloat16 as one little-endian 32-bit word");
#endif

namespace attn::detail {

/// Whether this compilation multiplies bfloat16 operands on `vdpbf16ps`.
constexpr bool has_bfloat16_dot() {
#ifdef ATTN_BFLOAT16_DOT
  return true;
#else
  return false;
#endif
}

inline float float_from_bits(std::uint32_t bits) {
  float value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// Two values rounded to bfloat16 (as PyTorch rounds) in one word: `low` in the low half.
inline std::uint32_t bfloat16_pair(float low, float high) {
  return std::uint32_t{bfloat16_bits(low)} | std::uint32_t{bfloat16_bits(high)} << 16;
}

/// Rows of C per register tile: 12 rows x 32 columns are 24 of the 32 vector registers.
inline constexpr Index bfloat16_tile_rows = 12;

#ifdef ATTN_BFLOAT16_DOT
/// C (rows, outputs <= 32) = alpha A B (+ C when accumulating) over `pairs` pairs, rows =
/// sizeof...(R): A's pair words at a[r * a_row + p * a_pair], B pair-rows of ldb bfloat16 (2 per
/// column). The rows are a pack expansion, not a loop: g++ 12 keeps a loop's sums in a stack
/// array and stores every one after every vdpbf16ps (its scalar replacement runs before the
/// loop is unrolled); with constant indices they stay in registers.
template <std::size_t... R>
void bfloat16_dot_tile(std::index_sequence<R...>, const std::uint32_t* a, Index a_row, Index a_pair,
                       const std::uint16_t* b, Index ldb, Index pairs, float alpha, float* c,
                       Index ldc, Index outputs, bool accumulate) {
  constexpr std::size_t rows = sizeof...(R);
  // A single row (decoding) has two sums only, each vdpbf16ps waiting for the last: four
  // pair-rows in flight, eight sums, keep the loads streaming.
  constexpr std::size_t unroll = rows == 1 ? 4 : 1;
  // Columns 0-15 and 16-31 of C: their B words, masked past `outputs` (a partial last panel or
  // tile: full ones load unmasked, which streams faster here).
  const auto low_mask = static_cast<__mmask16>(outputs >= 16 ? 0xFFFF : (1u << outputs) - 1);
  const auto high_mask = static_cast<__mmask16>(outputs >= 32  ? 0xFFFF
                                                : outputs > 16 ? (1u << (outputs - 16)) - 1
                                                               : 0);
  const bool full = outputs == 32;
  __m512 low[unroll][rows], high[unroll][rows];
  for (std::size_t u = 0; u < unroll; ++u) {
    ((low[u][R] = _mm512_setzero_ps(), high[u][R] = _mm512_setzero_ps()), ...);
  }
  const auto step = [&](Index p, __m512* sum_low, __m512* sum_high) {
    const std::uint16_t* pair_row = b + p * ldb;
    const auto b0 = (__m512bh)(full ? _mm512_loadu_si512(pair_row)
                                    : _mm512_maskz_loadu_epi32(low_mask, pair_row));
    const auto b1 = (__m512bh)(full ? _mm512_loadu_si512(pair_row + 32)
                                    : _mm512_maskz_loadu_epi32(high_mask, pair_row + 32));
    const std::uint32_t* words = a + p * a_pair;
    ((sum_low[R] = _mm512_dpbf16_ps(
          sum_low[R], (__m512bh)_mm512_set1_epi32(static_cast<int>(words[R * a_row])), b0),
      sum_high[R] = _mm512_dpbf16_ps(
          sum_high[R], (__m512bh)_mm512_set1_epi32(static_cast<int>(words[R * a_row])), b1)),
     ...);
  };
  Index p = 0;
  if constexpr (unroll == 4) {
    for (; p + 4 <= pairs; p += 4) {
      step(p, low[0], high[0]);
      step(p + 1, low[1], high[1]);
      step(p + 2, low[2], high[2]);
      step(p + 3, low[3], high[3]);
    }
    for (; p < pairs; ++p) step(p, low[0], high[0]);
    ((low[0][R] =
          _mm512_add_ps(_mm512_add_ps(low[0][R], low[1][R]), _mm512_add_ps(low[2][R], low[3][R])),
      high[0][R] = _mm512_add_ps(_mm512_add_ps(high[0][R], high[1][R]),
                                 _mm512_add_ps(high[2][R], high[3][R]))),
     ...);
  } else {
    for (; p < pairs; ++p) step(p, low[0], high[0]);
  }
  const __m512 scale = _mm512_set1_ps(alpha);
  const auto store = [&](float* row, __m512 sum_low, __m512 sum_high) {
    sum_low = _mm512_mul_ps(sum_low, scale);
    sum_high = _mm512_mul_ps(sum_high, scale);
    if (accumulate) {
      sum_low = _mm512_add_ps(sum_low, _mm512_maskz_loadu_ps(low_mask, row));
      sum_high = _mm512_add_ps(sum_high, _mm512_maskz_loadu_ps(high_mask, row + 16));
    }
    _mm512_mask_storeu_ps(row, low_mask, sum_low);
    _mm512_mask_storeu_ps(row + 16, high_mask, sum_high);
  };
  (store(c + static_cast<Index>(R) * ldc, low[0][R], high[0][R]), ...);
}

/// bfloat16_dot_tile for 1 .. max_rows rows, chosen at run time.
template <int max_rows>
void bfloat16_dot_rows(int rows, const std::uint32_t* a, Index a_row, Index a_pair,
                       const std::uint16_t* b, Index ldb, Index pairs, float alpha, float* c,
                       Index ldc, Index outputs, bool accumulate) {
  if constexpr (max_rows > 1) {
    if (rows < max_rows) {
      return bfloat16_dot_rows<max_rows - 1>(rows, a, a_row, a_pair, b, ldb, pairs, alpha, c, ldc,
                                             outputs, accumulate);
    }
  }
  bfloat16_dot_tile(std::make_index_sequence<max_rows>(), a, a_row, a_pair, b, ldb, pairs, alpha, c,
                    ldc, outputs, accumulate);
}

/// C (m, n) = alpha A B (+ C when accumulating): A's pair words at a[i * a_row + p * a_pair],
/// B `pairs` pair-rows of 2n bfloat16; register tiles of 12 rows by 32 columns.
inline void bfloat16_dot_block(Index m, Index n, Index pairs, const std::uint32_t* a, Index a_row,
                               Index a_pair, const std::uint16_t* b, float alpha, float* c,
                               Index ldc, bool accumulate) {
  constexpr Index columns = 32;
  for (Index j = 0; j < n; j += columns) {
    for (Index i = 0; i < m; i += bfloat16_tile_rows) {
      bfloat16_dot_rows<bfloat16_tile_rows>(static_cast<int>(std::min(bfloat16_tile_rows, m - i)),
                                            a + i * a_row, a_row, a_pair, b + 2 * j, 2 * n, pairs,
                                            alpha, c + i * ldc + j, ldc, std::min(columns, n - j),
                                            accumulate);
    }
  }
}

/// 16 floats at `low` and 16 at `high` rounded to bfloat16 and paired: word t holds low[t] and
/// high[t]. (vcvtneps2bf16 rounds to nearest even as PyTorch, flushing inputs below float's
/// normal range, 1.2e-38, to zero: far below anything a product keeps.)
inline __m512i bfloat16_pairs16(const float* low, const float* high) {
  const __m512i lows = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(low)));
  const __m512i highs = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(high)));
  return _mm512_or_si512(lows, _mm512_slli_epi32(highs, 16));
}
#endif

/// A (m, k), A(i, l) at a[i * a_row + l * a_col], rounded to pair words for rows [i0, i1) and
/// pairs [p0, p1): word (i, p) = A(i, 2p) in the low half, A(i, 2p + 1) (0 past k) in the high,
/// written to words[i * word_row + p * word_pair]. Every bfloat16 operand is packed by this:
/// the rows of a product's left operand (word_pair 1), the columns of a transposed one
/// (word_row 1), the pair-rows of a right operand (its transpose, by columns). Where A and the
/// words run along the same contiguous dimension, vcvtne2ps2bf16 rounds 32 values at once.
template <typename Scalar>
void round_to_pair_words(const Scalar* a, Index a_row, Index a_col, Index k, Index i0, Index i1,
                         Index p0, Index p1, std::uint32_t* words, Index word_row,
                         Index word_pair) {
  const auto word = [&](Index i, Index p) {
    const Scalar low = a[i * a_row + 2 * p * a_col];
    const Scalar high = 2 * p + 1 < k ? a[i * a_row + (2 * p + 1) * a_col] : Scalar(0);
    // (memcpy: the words may live in bfloat16 storage, which other code reads as uint16_t)
    const std::uint32_t pair = bfloat16_pair(float(low), float(high));
    std::memcpy(words + i * word_row + p * word_pair, &pair, sizeof pair);
  };
#ifdef ATTN_BFLOAT16_DOT
  if constexpr (std::is_same_v<Scalar, float>) {
    const Index full_pairs = k / 2;
    if (a_row == 1 && word_row == 1) {  // columns of A into columns of words, 16 rows at once
      for (Index p = p0; p < p1; ++p) {
        Index i = i0;
        if (p < full_pairs) {
          for (; i + 16 <= i1; i += 16) {
            _mm512_storeu_si512(
                words + p * word_pair + i,
                bfloat16_pairs16(a + 2 * p * a_col + i, a + (2 * p + 1) * a_col + i));
          }
        }
        for (; i < i1; ++i) word(i, p);
      }
      return;
    }
    if (a_col == 1 && word_pair == 1) {  // rows of A into rows of words, 32 values at once
      const Index vector_end = std::min(p1, full_pairs);
      for (Index i = i0; i < i1; ++i) {
        Index p = p0;
        for (; p + 16 <= vector_end; p += 16) {
          const float* row = a + i * a_row + 2 * p;
          _mm512_storeu_si512(
              words + i * word_row + p,
              (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 16), _mm512_loadu_ps(row)));
        }
        for (; p < p1; ++p) word(i, p);
      }
      return;
    }
  }
#endif
  for (Index p = p0; p < p1; ++p) {
    for (Index i = i0; i < i1; ++i) word(i, p);
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_BFLOAT16_DOT_HPP
