// detail::BFloat16Matrix keeps weights rounded to bfloat16 (attn/tensor/bfloat16.hpp), and its
// products, for every shape its packing pads (rows not a multiple of 32, an odd column count),
// for few and many activation rows with leading dimensions, with float or bfloat16-rounded
// activations, are the products a plain loop gives with the rounded values.
#include "attn/kernels/bfloat16_matrix.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "attn/random/generator.hpp"
#include "attn/threads.hpp"

namespace {

using attn::Index;
using attn::round_to_bfloat16;
using attn::detail::BFloat16Matrix;

// Y (+)= X W^T against a double loop over the rounded weights (and, with round_activations, the
// rounded x), X read through a view with a row stride (or, `transposed`, stored column by
// column). The scale is the sum of |w| |x| over each dot product, which bounds the error of any
// order of the float sums by (cols + 2) eps times itself (Higham 3.5; + 1 for the accumulate).
template <typename Scalar>
void check_product(Index rows, Index cols, Index m, bool round_activations = false,
                   bool accumulate = false, bool transposed = false) {
  attn::Generator generator(static_cast<std::uint64_t>(rows * 131 + cols * 7 + m));
  const Index ldw = cols + 3, ldx = (transposed ? m : cols) + 5, ldy = rows + 2;
  std::vector<Scalar> w(static_cast<std::size_t>(rows * ldw));
  std::vector<Scalar> x(static_cast<std::size_t>((transposed ? cols : m) * ldx));
  for (auto& v : w) v = generator.uniform<Scalar>(-1, 1);
  for (auto& v : x) v = generator.uniform<Scalar>(-1, 1);
  const BFloat16Matrix packed(attn::TensorView<const Scalar, 2>(w.data(), {rows, cols}, {ldw, 1}));
  ASSERT_EQ(packed.rows(), rows);
  ASSERT_EQ(packed.cols(), cols);
  const attn::TensorView<const Scalar, 2> x_view(
      x.data(), {m, cols}, transposed ? attn::Shape<2>{1, ldx} : attn::Shape<2>{ldx, 1});
  constexpr Scalar initial = 7;
  std::vector<Scalar> y(static_cast<std::size_t>(m * ldy), initial);
  packed.multiply(x_view, y.data(), ldy, accumulate, round_activations);
  const double eps = std::numeric_limits<Scalar>::epsilon();
  for (Index i = 0; i < m; ++i) {
    for (Index r = 0; r < rows; ++r) {
      double expected = accumulate ? initial : 0, scale = accumulate ? initial : 0;
      for (Index c = 0; c < cols; ++c) {
        const double weight = round_to_bfloat16(w[r * ldw + c]);
        ASSERT_EQ(double(packed(r, c)), weight) << "W(" << r << ", " << c << ")";
        const double xc =
            round_activations ? double(round_to_bfloat16(x_view(i, c))) : double(x_view(i, c));
        expected += weight * xc;
        scale += std::abs(weight * xc);
      }
      EXPECT_LE(std::abs(double(y[i * ldy + r]) - expected), double(cols + 2) * eps * scale)
          << "y(" << i << ", " << r << ") for W " << rows << " x " << cols << ", " << m << " rows"
          << (round_activations ? ", rounded x" : "") << (accumulate ? ", accumulated" : "")
          << (transposed ? ", x transposed" : "");
    }
    for (Index r = rows; r < ldy; ++r) {
      EXPECT_EQ(y[i * ldy + r], initial) << "wrote past row " << i << "'s end";
    }
  }
}

// Panels of 32 rows (the last partial), pairs of columns (an odd count pads one), and row
// counts that stream (<= 8), widen blocks for a GEMM (more), and fill vdpbf16ps tiles of 12
// rows partly (rounded activations on an AVX512_BF16 CPU).
TEST(BFloat16Matrix, ProductEqualsTheLoopOverRoundedWeights) {
  for (Index rows : {1, 5, 32, 33, 70}) {
    for (Index cols : {1, 2, 31, 33, 100}) {
      for (Index m : {1, 3, 9, 26}) {
        check_product<float>(rows, cols, m);
        check_product<double>(rows, cols, m);
      }
    }
  }
}

// With round_activations, x is rounded to bfloat16 as torch.autocast rounds it, and the sums
// stay float: the same loop over rounded x and W. Accumulating adds to y; x may be strided.
TEST(BFloat16Matrix, RoundedActivationsEqualTheLoopOverRoundedValues) {
  for (Index rows : {1, 33, 70}) {
    for (Index cols : {1, 31, 100, 300}) {
      for (Index m : {1, 2, 3, 12, 13, 30}) {
        check_product<float>(rows, cols, m, true);
        check_product<double>(rows, cols, m, true);
      }
    }
  }
  for (bool transposed : {false, true}) {
    check_product<float>(37, 70, 20, true, true, transposed);
    check_product<float>(37, 70, 20, false, true, transposed);
    check_product<double>(37, 70, 5, true, true, transposed);
  }
}

TEST(BFloat16Matrix, ProductSharedAmongThreadsEqualsTheLoop) {
  // 300 rows: 10 panels, enough to split among the threads, and a partial last panel.
  const int before = attn::num_threads();
  for (int threads : {1, 2}) {
    attn::set_num_threads(threads);
    check_product<float>(300, 70, 2);
    check_product<float>(300, 70, 100);
    check_product<float>(300, 70, 100, true);
  }
  attn::set_num_threads(before);
}

TEST(BFloat16Matrix, MovedFromIsEmpty) {
  const std::vector<float> w{1, 2, 3, 4, 5, 6};
  BFloat16Matrix packed(attn::TensorView<const float, 2>(w.data(), {2, 3}, {3, 1}));
  const BFloat16Matrix moved(std::move(packed));
  EXPECT_TRUE(packed.empty());  // NOLINT(bugprone-use-after-move): what a move leaves
  EXPECT_EQ(moved(1, 2), 6.0f);
}

TEST(BFloat16Matrix, EmptyUntilPacked) {
  const BFloat16Matrix none;
  EXPECT_TRUE(none.empty());
  const std::vector<float> w{1, 2, 3, 4, 5, 6};
  EXPECT_FALSE(BFloat16Matrix(attn::TensorView<const float, 2>(w.data(), {2, 3}, {3, 1})).empty());
}

}  // namespace
