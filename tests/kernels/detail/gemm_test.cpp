// detail::gemm computes every product in attn, with Eigen or, in a build with ATTN_CBLAS, with the
// BLAS's cblas_?gemm. Either must give the product a plain triple loop gives, for every layout.
#include "attn/kernels/detail/gemm.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "attn/random/generator.hpp"

namespace {

template <bool ta, bool tb, typename Scalar>
void check_layout(double tolerance) {
  attn::Generator generator(3);
  {
    const int layout = int(ta) + 2 * int(tb);
    for (attn::Index m : {1, 7, 65}) {
      for (attn::Index n : {1, 3, 33}) {
        for (attn::Index k : {1, 5, 64}) {
          // Leading dimensions larger than the rows need, as in views of a fused projection.
          const attn::Index lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
          std::vector<Scalar> a((ta ? k : m) * lda), b((tb ? n : k) * ldb), c(m * ldc);
          for (auto* v : {&a, &b, &c})
            for (auto& x : *v) x = generator.uniform<Scalar>(-1, 1);
          std::vector<Scalar> expected = c;
          const Scalar alpha = Scalar(0.5), beta = Scalar(-2);
          for (attn::Index i = 0; i < m; ++i) {
            for (attn::Index j = 0; j < n; ++j) {
              Scalar sum = 0;
              for (attn::Index p = 0; p < k; ++p) {
                sum +=
                    (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
              }
              expected[i * ldc + j] = alpha * sum + beta * c[i * ldc + j];
            }
          }
          attn::detail::gemm<ta, tb>(m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(),
                                     ldc);
          for (std::size_t i = 0; i < c.size(); ++i) {
            ASSERT_NEAR(c[i], expected[i], tolerance)
                << "m " << m << " n " << n << " k " << k << " layout " << layout;
          }
        }
      }
    }
  }
}

template <typename Scalar>
void check_layouts(double tolerance) {
  check_layout<false, false, Scalar>(tolerance);
  check_layout<true, false, Scalar>(tolerance);
  check_layout<false, true, Scalar>(tolerance);
  check_layout<true, true, Scalar>(tolerance);
}

// Entries are U(-1, 1) and k <= 64: each result is a sum of at most 64 products below 1 in
// magnitude, so its rounding error stays below k * eps (float 64 * 6e-8 = 4e-6).
TEST(Gemm, MatchesATripleLoopInFloat) {
  check_layouts<float>(1e-5);
}
TEST(Gemm, MatchesATripleLoopInDouble) {
  check_layouts<double>(1e-13);
}

TEST(Gemm, ReportsItsBackend) {
#ifdef ATTN_USE_CBLAS
  constexpr bool built_with_cblas = true;
#else
  constexpr bool built_with_cblas = false;
#endif
  EXPECT_EQ(attn::detail::uses_cblas(), built_with_cblas);
}

}  // namespace
