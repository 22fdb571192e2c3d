// attn/kernels/bfloat16_matrix.hpp: a weight matrix stored in bfloat16 only, and the
// products Y = X W^T over it for any number of rows of X: 2 bytes a weight instead of 4, so a
// decoding step (each weight read once) takes half the time memory bandwidth sets, and a model
// held this way needs half the memory.
//
// Two arithmetics, one layout:
// - float (or double) activations times the bfloat16 weights, widened exactly: the product of
//   the rounded weights, summed in Scalar, whatever the CPU;
// - bfloat16 activations (`round_activations`, torch.autocast's arithmetic): each x rounded to
//   bfloat16 too, the products summed in float. On a CPU with AVX512_BF16 this runs on
//   `vdpbf16ps` (32 products an instruction, twice float FMA's rate); elsewhere the same rounded
//   values go through the float arithmetic above: the same products, summed in another order.
#ifndef ATTN_KERNELS_BFLOAT16_MATRIX_HPP
#define ATTN_KERNELS_BFLOAT16_MATRIX_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/detail/bfloat16_dot.hpp"
#include "attn/kernels/detail/dispatch.hpp"
#include "attn/kernels/gemm.hpp"
#include "attn/tensor/bfloat16.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

/// The layout of a BFloat16Matrix W (rows, cols): rows in panels of 32 (the last padded with zero
/// rows); inside a panel, the columns in pairs (the last padded with a zero column when cols is
/// odd), pair p holding W(r, 2p) and W(r, 2p + 1) of each of the panel's 32 rows r in turn. One
/// pair of a row is one 32-bit word, so a 512-bit load holds two columns of 16 rows: what
/// `vdpbf16ps` multiplies with a broadcast pair of x, and, split into its low and high halves,
/// two vectors of floats for an FMA.
struct BFloat16Packing {
  static constexpr Index panel_rows = 32;
  Index rows, cols;

  Index panels() const { return (rows + panel_rows - 1) / panel_rows; }
  Index pairs() const { return (cols + 1) / 2; }
  Index panel_size() const { return pairs() * panel_rows * 2; }
  Index size() const { return panels() * panel_size(); }
  Index offset(Index r, Index c) const {
    return (r / panel_rows) * panel_size() + ((c / 2) * panel_rows + r % panel_rows) * 2 + c % 2;
  }
  /// Rows of W in panel `panel` (32 but in the last).
  Index panel_outputs(Index panel) const { return std::min(panel_rows, rows - panel * panel_rows); }
};

/// y[j] (+)= sum_c W(32 panel + j, c) x[c] for the rows j < outputs of one panel, summed in
/// Scalar. The even and odd columns keep separate sums, 2 x 32 independent chains the compiler
/// turns into vector FMAs (AVX-512: 4 registers) after splitting each 32-bit pair into the two
/// floats it holds: its low half shifted up, its high half masked.
template <typename Scalar>
void bfloat16_panel_row(const BFloat16Packing& packing, const std::uint16_t* panel, const Scalar* x,
                        Scalar* y, Index outputs, bool accumulate) {
  constexpr Index n = BFloat16Packing::panel_rows;
  Scalar even[n] = {}, odd[n] = {};
  const Index full_pairs = packing.cols / 2;
  for (Index p = 0; p < full_pairs; ++p) {
    const Scalar x0 = x[2 * p], x1 = x[2 * p + 1];
    const std::uint16_t* w = panel + p * 2 * n;
    for (Index j = 0; j < n; ++j) {
      std::uint32_t pair = 0;
      std::memcpy(&pair, w + 2 * j, sizeof pair);
      even[j] += static_cast<Scalar>(float_from_bits(pair << 16)) * x0;
      odd[j] += static_cast<Scalar>(float_from_bits(pair & 0xFFFF0000u)) * x1;
    }
  }
  if (full_pairs < packing.pairs()) {  // an odd column count: the last pair's second is padding
    const Scalar x0 = x[2 * full_pairs];
    const std::uint16_t* w = panel + full_pairs * 2 * n;
    for (Index j = 0; j < n; ++j) even[j] += static_cast<Scalar>(bfloat16_to_float(w[2 * j])) * x0;
  }
  for (Index j = 0; j < outputs; ++j) {
    y[j] = (accumulate ? y[j] : Scalar(0)) + (even[j] + odd[j]);
  }
}

/// The panel's rows widened to Scalar, row-major (outputs, cols): what a product of many rows
/// of x multiplies with, reusing each weight across them.
template <typename Scalar>
void bfloat16_panel_widen(const BFloat16Packing& packing, const std::uint16_t* panel, Index outputs,
                          Scalar* w) {
  constexpr Index n = BFloat16Packing::panel_rows;
  for (Index c = 0; c < packing.cols; ++c) {
    const std::uint16_t* column = panel + (c / 2) * 2 * n + c % 2;
    for (Index j = 0; j < outputs; ++j) {
      w[j * packing.cols + c] = static_cast<Scalar>(bfloat16_to_float(column[2 * j]));
    }
  }
}

/// All of a packed W widened to Scalar, row-major (rows, cols).
template <typename Scalar>
void bfloat16_widen(const BFloat16Packing& packing, const std::uint16_t* packed, Scalar* w) {
  for (Index panel = 0; panel < packing.panels(); ++panel) {
    bfloat16_panel_widen(packing, packed + panel * packing.panel_size(),
                         packing.panel_outputs(panel),
                         w + panel * BFloat16Packing::panel_rows * packing.cols);
  }
}

#ifdef ATTN_BFLOAT16_DOT
/// x (m, cols) rounded to bfloat16 pair words (columns 2p and 2p + 1 of a row in one word, a
/// zero for a padding column), laid out along x's contiguous dimension: word (i, p) at
/// a[i * a_row + p * a_pair]. Rows of x (unit column stride) give rows of words, 32 floats
/// rounded at once; columns of x (a transposed operand: unit row stride) give columns of words,
/// 16 rows at once; the work shared among the threads.
struct BFloat16Pairs {
  // Not a Tensor: attn::compiled's level objects hold private copies of the buffer pool, which
  // release_buffer_pool() and its limits could not reach.
  std::unique_ptr<std::uint32_t[]> words;
  Index a_row, a_pair;
};

inline BFloat16Pairs round_to_bfloat16_pairs(const TensorView<const float, 2>& x, Index pairs,
                                             int threads) {
  constexpr Index min_rows = 64, min_pairs = 16;
  const Index m = x.size(0), cols = x.size(1);
  BFloat16Pairs a{std::unique_ptr<std::uint32_t[]>(new std::uint32_t[std::size_t(m * pairs)]),
                  pairs, 1};
  if (x.stride(0) == 1 && x.stride(1) != 1) {  // columns of words, the pairs shared
    a.a_row = 1;
    a.a_pair = m;
    for_each_thread_row_block(pairs, min_pairs, threads, [&](Index, Index p0, Index count) {
      round_to_pair_words(x.data(), x.stride(0), x.stride(1), cols, 0, m, p0, p0 + count,
                          a.words.get(), a.a_row, a.a_pair);
    });
  } else {  // rows of words, the rows shared
    for_each_thread_row_block(m, min_rows, threads, [&](Index, Index row0, Index count) {
      round_to_pair_words(x.data(), x.stride(0), x.stride(1), cols, row0, row0 + count, 0, pairs,
                          a.words.get(), a.a_row, a.a_pair);
    });
  }
  return a;
}

/// Y (+)= round(X) W^T on vdpbf16ps: X rounded to bfloat16 pairs once, then work items of
/// (a block of rows of X, a group of 4 panels) shared among the threads, a block of rows (up to
/// 512 KB of pairs) staying in L2 while the group's panels pass, each panel read in full by
/// 12-row tiles (12 rows x 32 outputs: 24 of the 32 registers hold the sums).
inline void bfloat16_dot_product(const BFloat16Packing& packing, const std::uint16_t* packed,
                                 const TensorView<const float, 2>& x, float* y, Index ldy,
                                 bool accumulate, int threads) {
  constexpr Index tile_rows = bfloat16_tile_rows, group_panels = 4, max_block_rows = 240;
  constexpr Index block_bytes = Index{512} << 10;
  const Index m = x.size(0), pairs = packing.pairs();
  const BFloat16Pairs a = round_to_bfloat16_pairs(x, pairs, threads);
  // Blocks of rows of equal size (in whole tiles), so that the threads' shares of work items
  // are equal: a team whose calling thread finished first would look held up (TeamWatch).
  const Index most_rows = std::clamp<Index>(
      block_bytes / (Index{sizeof(std::uint32_t)} * pairs) / tile_rows * tile_rows, tile_rows,
      max_block_rows);
  const Index row_blocks = (m + most_rows - 1) / most_rows;
  const Index block_tiles = ((m + row_blocks - 1) / row_blocks + tile_rows - 1) / tile_rows;
  const Index block_rows = block_tiles * tile_rows;
  const Index groups = (packing.panels() + group_panels - 1) / group_panels;
  for_each_thread_row_block(row_blocks * groups, 2, threads, [&](Index, Index item0, Index count) {
    for (Index item = item0; item < item0 + count; ++item) {
      const Index i0 = item / groups * block_rows, i1 = std::min(m, i0 + block_rows);
      const Index panel0 = item % groups * group_panels;
      for (Index panel = panel0; panel < std::min(panel0 + group_panels, packing.panels());
           ++panel) {
        for (Index i = i0; i < i1; i += tile_rows) {
          bfloat16_dot_rows<bfloat16_tile_rows>(
              static_cast<int>(std::min(tile_rows, i1 - i)), a.words.get() + i * a.a_row, a.a_row,
              a.a_pair, packed + panel * packing.panel_size(), 2 * BFloat16Packing::panel_rows,
              pairs, 1.0f, y + i * ldy + panel * BFloat16Packing::panel_rows, ldy,
              packing.panel_outputs(panel), accumulate);
        }
      }
    }
  });
}
#endif

/// Rounds the rows of one panel of W, W(32 panel + j, c) at rows[j * row_stride + c *
/// col_stride], into the panel's words in `bits` (BFloat16Packing's layout): its rows by columns
/// of words, word (j, p) at j + 32 p (round_to_pair_words). For a transposed W (unit row stride:
/// the backward's operands) each pair of columns is one contiguous stretch of 32 words, rounded
/// 16 at a time. The padding rows of a last panel are left as they are (zero).
template <typename Scalar>
void bfloat16_pack_panel(const BFloat16Packing& packing, Index panel, const Scalar* rows,
                         Index row_stride, Index col_stride, std::uint16_t* bits) {
  round_to_pair_words(rows, row_stride, col_stride, packing.cols, 0, packing.panel_outputs(panel),
                      0, packing.pairs(),
                      reinterpret_cast<std::uint32_t*>(bits + panel * packing.panel_size()),
                      Index{1}, BFloat16Packing::panel_rows);
}

/// Packs W (rows, cols), any strides, into `bits` (BFloat16Packing's layout, zeroed), each
/// weight rounded to bfloat16; the panels shared among `threads`.
template <typename Scalar>
void bfloat16_pack_kernel(const TensorView<const Scalar, 2>& w, std::uint16_t* bits, int threads) {
  constexpr Index min_panels = 8;
  const BFloat16Packing packing{w.size(0), w.size(1)};
  for_each_thread_row_block(
      packing.panels(), min_panels, threads, [&](Index, Index panel0, Index count) {
        for (Index panel = panel0; panel < panel0 + count; ++panel) {
          bfloat16_pack_panel(packing, panel,
                              w.data() + panel * BFloat16Packing::panel_rows * w.stride(0),
                              w.stride(0), w.stride(1), bits);
        }
      });
}

/// Y (m, rows) (+)= X (m, cols) W^T over a packed W (rows, cols); X any strides, Y row-major
/// with leading dimension ldy (not overlapping X). With round_activations, X is rounded to
/// bfloat16 first (see the top of this file). The panels are shared among `threads`.
template <typename Scalar>
void bfloat16_product_kernel(const std::uint16_t* packed, Index rows, Index cols,
                             const TensorView<const Scalar, 2>& x, Scalar* y, Index ldy,
                             bool accumulate, bool round_activations, int threads) {
  const BFloat16Packing packing{rows, cols};
  const Index m = x.size(0);
  if (m == 0) return;
#ifdef ATTN_BFLOAT16_DOT
  if constexpr (std::is_same_v<Scalar, float>) {
    if (round_activations) {
      return bfloat16_dot_product(packing, packed, x, y, ldy, accumulate, threads);
    }
  }
#endif
  if (round_activations || x.stride(1) != 1) {  // rows of Scalar, rounded if asked
    // (Plain memory, not a Tensor: see BFloat16Pairs.)
    std::unique_ptr<Scalar[]> copy(new Scalar[std::size_t(m * cols)]);
    constexpr Index min_rows = 64;
    for_each_thread_row_block(m, min_rows, threads, [&](Index, Index row0, Index count) {
      for (Index i = row0; i < row0 + count; ++i) {
        for (Index c = 0; c < cols; ++c) {
          const Scalar value = x(i, c);
          copy[std::size_t(i * cols + c)] = round_activations ? round_to_bfloat16(value) : value;
        }
      }
    });
    const TensorView<const Scalar, 2> copied(copy.get(), {m, cols}, {cols, 1});
    return bfloat16_product_kernel<Scalar>(packed, rows, cols, copied, y, ldy, accumulate, false,
                                           threads);
  }
  // A few rows stream the weights (each read from memory once, the rows reading it from cache);
  // more rows widen 128 rows of W at a time and reuse them in a GEMM, at the arithmetic's rate.
  constexpr Index streamed_rows = 8, min_panels = 4, widened_panels = 4;
  const Index ldx = x.stride(0);
  if (m > streamed_rows && packing.panels() < Index{threads} * widened_panels) {
    // Many rows and a narrow W: too few panels to share, so widen W whole and share the rows.
    std::vector<Scalar> widened(static_cast<std::size_t>(rows * cols));
    bfloat16_widen(packing, packed, widened.data());
    parallel_gemm_kernel<false, true>(m, rows, cols, Scalar(1), x.data(), ldx, widened.data(), cols,
                                      accumulate ? Scalar(1) : Scalar(0), y, ldy, threads);
    return;
  }
  for_each_thread_row_block(
      packing.panels(), min_panels, threads, [&](Index, Index panel0, Index count) {
        if (m <= streamed_rows) {
          for (Index panel = panel0; panel < panel0 + count; ++panel) {
            const std::uint16_t* w = packed + panel * packing.panel_size();
            for (Index i = 0; i < m; ++i) {
              bfloat16_panel_row(packing, w, x.data() + i * ldx,
                                 y + i * ldy + panel * BFloat16Packing::panel_rows,
                                 packing.panel_outputs(panel), accumulate);
            }
          }
          return;
        }
        std::vector<Scalar> widened(
            static_cast<std::size_t>(widened_panels * BFloat16Packing::panel_rows * cols));
        for (Index first = panel0; first < panel0 + count; first += widened_panels) {
          const Index last = std::min(first + widened_panels, panel0 + count);
          Index outputs = 0;
          for (Index panel = first; panel < last; ++panel) {
            bfloat16_panel_widen(packing, packed + panel * packing.panel_size(),
                                 packing.panel_outputs(panel), widened.data() + outputs * cols);
            outputs += packing.panel_outputs(panel);
          }
          gemm_kernel<false, true>(m, outputs, cols, Scalar(1), x.data(), ldx, widened.data(), cols,
                                   accumulate ? Scalar(1) : Scalar(0),
                                   y + first * BFloat16Packing::panel_rows, ldy);
        }
      });
}

/// A (rows, cols) matrix W held as bfloat16 only (layout: BFloat16Packing), for Y = X W^T.
class BFloat16Matrix {
 public:
  BFloat16Matrix() = default;

  /// What the bits live in. `weight`: memory of its own, for as long as its layer (not attn's
  /// buffer pool, where a block freed by the Scalar weight, twice the size, would hold it with
  /// half of the block's memory kept and unused). `operand`: a product's operand packed for one
  /// call, from the buffer pool, which hands the same blocks to the next call.
  enum class Lifetime { weight, operand };

  /// Packs W (rows, cols), any strides, rounding each weight to bfloat16 as PyTorch does, on
  /// num_threads() threads (bfloat16_pack_kernel: the headers' body, or attn::compiled's).
  template <typename Scalar>
  explicit BFloat16Matrix(const TensorView<const Scalar, 2>& w,
                          Lifetime lifetime = Lifetime::operand)
      : BFloat16Matrix(w.size(0), w.size(1), lifetime) {
    if constexpr (compiled_kernels) {
      dispatched<Scalar>().bfloat16_pack(w, bits(), num_threads());
    } else {
      bfloat16_pack_kernel<Scalar>(w, bits(), num_threads());
    }
  }

  BFloat16Matrix(const BFloat16Matrix&) = default;
  BFloat16Matrix& operator=(const BFloat16Matrix&) = default;
  /// A moved-from matrix is empty (not a shape without bits).
  BFloat16Matrix(BFloat16Matrix&& other) noexcept
      : packing_(std::exchange(other.packing_, BFloat16Packing{0, 0})),
        owned_(std::move(other.owned_)),
        pooled_(std::move(other.pooled_)) {}
  BFloat16Matrix& operator=(BFloat16Matrix&& other) noexcept {
    packing_ = std::exchange(other.packing_, BFloat16Packing{0, 0});
    owned_ = std::move(other.owned_);
    pooled_ = std::move(other.pooled_);
    return *this;
  }

  /// A zero matrix (rows, cols), for filling panel by panel (set_panel) without a Scalar copy of
  /// the whole.
  BFloat16Matrix(Index rows, Index cols, Lifetime lifetime = Lifetime::weight)
      : packing_{rows, cols} {
    const Index size = packing_.size();
    if (lifetime == Lifetime::weight) {
      owned_.assign(static_cast<std::size_t>(size), 0);
    } else {
      pooled_ = Tensor<std::uint16_t, 1>({size});
    }
  }

  /// Rows 32 panel .. 32 panel + 31 of W (fewer in the last panel) from `rows`, row-major
  /// (cols values a row), rounded to bfloat16.
  template <typename Scalar>
  void set_panel(Index panel, const Scalar* rows) {
    bfloat16_pack_panel(packing_, panel, rows, cols(), Index{1}, bits());
  }

  bool empty() const { return packing_.rows == 0; }
  Index rows() const { return packing_.rows; }
  Index cols() const { return packing_.cols; }
  /// Bytes held.
  Index bytes() const { return packing_.size() * Index{sizeof(std::uint16_t)}; }

  /// W(r, c) as float.
  float operator()(Index r, Index c) const {
    return bfloat16_to_float(bits()[packing_.offset(r, c)]);
  }
  /// Row r of W widened into `out` (cols values).
  template <typename Scalar>
  void row(Index r, Scalar* out) const {
    for (Index c = 0; c < cols(); ++c) out[c] = static_cast<Scalar>((*this)(r, c));
  }
  /// All of W widened into `out`, row-major (rows x cols values).
  template <typename Scalar>
  void widen(Scalar* out) const {
    bfloat16_widen(packing_, bits(), out);
  }

  /// Y (m, rows) (+)= X (m, cols) W^T, X any strides, Y row-major with leading dimension ldy
  /// (not overlapping X); X rounded to bfloat16 first with round_activations. On num_threads()
  /// threads: compiled into this program from the headers, or attn::compiled's kernel for the
  /// CPU's level.
  template <typename Scalar>
  void multiply(const TensorView<const Scalar, 2>& x, Scalar* y, Index ldy, bool accumulate,
                bool round_activations) const {
    if constexpr (compiled_kernels) {
      dispatched<Scalar>().bfloat16_product(bits(), rows(), cols(), x, y, ldy, accumulate,
                                            round_activations, num_threads());
    } else {
      bfloat16_product_kernel<Scalar>(bits(), rows(), cols(), x, y, ldy, accumulate,
                                      round_activations, num_threads());
    }
  }

 private:
  std::uint16_t* bits() { return owned_.empty() ? pooled_.data() : owned_.data(); }
  const std::uint16_t* bits() const { return owned_.empty() ? pooled_.data() : owned_.data(); }

  BFloat16Packing packing_{0, 0};
  std::vector<std::uint16_t> owned_;  // Lifetime::weight
  Tensor<std::uint16_t, 1> pooled_;   // Lifetime::operand
};

}  // namespace attn::detail

#endif  // ATTN_KERNELS_BFLOAT16_MATRIX_HPP
