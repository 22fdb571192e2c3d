// detail::BFloat16Matrix keeps weights rounded to bfloat16 (attn/tensor/bfloat16.hpp), and its
// product, for every shape its packing pads (rows not a multiple of 4, columns not a multiple
// of 32) and for several activation rows with leading dimensions, is the product a plain loop
// gives with the rounded weights.
#include "attn/kernels/detail/bfloat16_matrix.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "attn/random/generator.hpp"
#include "attn/threads.hpp"

namespace {

using attn::Index;
using attn::round_to_bfloat16;
using attn::detail::BFloat16Matrix;

// Y = X W^T against a double loop over the rounded weights. The scale is the sum of
// |w| |x| over each dot product, which bounds the error of any order of the float sums by
// (cols + 1) eps times itself (Higham 3.5).
template <typename Scalar>
void check_product(Index rows, Index cols, Index m) {
  attn::Generator generator(static_cast<std::uint64_t>(rows * 131 + cols * 7 + m));
  const Index ldw = cols + 3, ldx = cols + 5, ldy = rows + 2;
  std::vector<Scalar> w(static_cast<std::size_t>(rows * ldw)), x(static_cast<std::size_t>(m * ldx));
  for (auto& v : w) v = generator.uniform<Scalar>(-1, 1);
  for (auto& v : x) v = generator.uniform<Scalar>(-1, 1);
  const BFloat16Matrix packed(w.data(), rows, cols, ldw);
  ASSERT_EQ(packed.rows(), rows);
  ASSERT_EQ(packed.cols(), cols);
  std::vector<Scalar> y(static_cast<std::size_t>(m * ldy), Scalar(7));
  packed.multiply(m, x.data(), ldx, y.data(), ldy);
  const double eps = std::numeric_limits<Scalar>::epsilon();
  for (Index i = 0; i < m; ++i) {
    for (Index r = 0; r < rows; ++r) {
      double expected = 0, scale = 0;
      for (Index c = 0; c < cols; ++c) {
        const double weight = round_to_bfloat16(w[r * ldw + c]);
        ASSERT_EQ(double(packed(r, c)), weight) << "W(" << r << ", " << c << ")";
        expected += weight * double(x[i * ldx + c]);
        scale += std::abs(weight * double(x[i * ldx + c]));
      }
      EXPECT_LE(std::abs(double(y[i * ldy + r]) - expected), double(cols + 1) * eps * scale)
          << "y(" << i << ", " << r << ") for W " << rows << " x " << cols << ", " << m << " rows";
    }
    for (Index r = rows; r < ldy; ++r) {
      EXPECT_EQ(y[i * ldy + r], Scalar(7)) << "wrote past row " << i << "'s end";
    }
  }
}

TEST(BFloat16Matrix, ProductEqualsTheLoopOverRoundedWeights) {
  for (Index rows : {1, 3, 4, 5, 9}) {
    for (Index cols : {1, 31, 32, 33, 100}) {
      for (Index m : {1, 3}) {
        check_product<float>(rows, cols, m);
        check_product<double>(rows, cols, m);
      }
    }
  }
}

TEST(BFloat16Matrix, ProductSharedAmongThreadsEqualsTheLoop) {
  // 130 rows: 33 groups of 4, enough to split among the threads, and a partial last group.
  const int before = attn::num_threads();
  for (int threads : {1, 2}) {
    attn::set_num_threads(threads);
    check_product<float>(130, 70, 2);
  }
  attn::set_num_threads(before);
}

TEST(BFloat16Matrix, EmptyUntilPacked) {
  const BFloat16Matrix none;
  EXPECT_TRUE(none.empty());
  const std::vector<float> w{1, 2, 3, 4, 5, 6};
  EXPECT_FALSE(BFloat16Matrix(w.data(), 2, 3, 3).empty());
}

}  // namespace
