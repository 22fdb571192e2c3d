// detail::tile_gemm computes the fused attention's tile products with its own register-blocked
// loops. It must give what a triple loop gives for every block path (full R x P blocks, single
// packets, scalar column tails, single rows), for A read as stored or transposed, with and
// without accumulation into C.
#include "attn/kernels/detail/tile_gemm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attn/random/generator.hpp"
#include "support/normwise.hpp"

namespace {

// Same bound as gemm_test.cpp: normwise (k + 2) eps against |alpha| |A| |B| + |C| (Higham 3.5).
template <typename Scalar>
void check_tile_gemm(bool a_transposed, bool accumulate) {
  attn::Generator generator(5);
  for (attn::Index m : {1, 5, 6, 13, 128}) {
    for (attn::Index n : {1, 7, 16, 33, 64, 100}) {
      for (attn::Index k : {0, 1, 3, 64, 130}) {
        // Row strides larger than the rows need, as in views of a fused projection.
        const attn::Index lda = (a_transposed ? m : k) + 3, ldb = n + 2, ldc = n + 5;
        std::vector<Scalar> a((a_transposed ? k : m) * lda + 1), b(k * ldb + 1), c(m * ldc);
        for (auto* values : {&a, &b, &c}) {
          for (auto& x : *values) x = generator.uniform<Scalar>(-1, 1);
        }
        const attn::Index a_row = a_transposed ? 1 : lda, a_col = a_transposed ? lda : 1;
        const Scalar alpha = Scalar(0.375);
        // The padding between the rows of C keeps its values: expected starts as C.
        std::vector<double> expected(c.begin(), c.end()), scale(c.size(), 0.0);
        for (attn::Index i = 0; i < m; ++i) {
          for (attn::Index j = 0; j < n; ++j) {
            double sum = 0, magnitude = 0;
            for (attn::Index l = 0; l < k; ++l) {
              const double product = double(a[i * a_row + l * a_col]) * double(b[l * ldb + j]);
              sum += product;
              magnitude += std::abs(product);
            }
            const double previous = accumulate ? double(c[i * ldc + j]) : 0.0;
            expected[i * ldc + j] = double(alpha) * sum + previous;
            scale[i * ldc + j] = double(alpha) * magnitude + std::abs(previous);
          }
        }
        attn::detail::tile_gemm(m, n, k, alpha, a.data(), a_row, a_col, b.data(), ldb, accumulate,
                                c.data(), ldc);
        ASSERT_TRUE(attn_test::close_normwise(c, expected, attn_test::frobenius(scale),
                                              double(k + 2) * attn_test::epsilon<Scalar>()))
            << "m " << m << " n " << n << " k " << k << " transposed " << a_transposed
            << " accumulate " << accumulate;
      }
    }
  }
}

TEST(TileGemm, MatchesATripleLoopInFloat) {
  for (bool transposed : {false, true}) {
    for (bool accumulate : {false, true}) check_tile_gemm<float>(transposed, accumulate);
  }
}

TEST(TileGemm, MatchesATripleLoopInDouble) {
  for (bool transposed : {false, true}) {
    for (bool accumulate : {false, true}) check_tile_gemm<double>(transposed, accumulate);
  }
}

}  // namespace
