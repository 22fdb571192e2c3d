// detail::gemm computes every product in attn, with Eigen or, in a build with ATTN_CBLAS, with the
// BLAS's cblas_?gemm. Either must give the product a plain triple loop gives, for every layout.
#include "attn/kernels/gemm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attn/random/generator.hpp"
#include "support/normwise.hpp"

namespace {

// The triple loop runs in double; the problem scale of c = alpha a b + beta c is the same
// product of absolute values, |alpha| |a| |b| + |beta| |c|, which bounds the error of any
// summation order elementwise by gamma_{k+2} = (k + 2) eps (Higham, Accuracy and Stability of
// Numerical Algorithms, 3.5): normwise, ||c - expected||_F <= (k + 2) eps ||scale||_F.
template <bool ta, bool tb, typename Scalar>
void check_layout() {
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
          std::vector<double> expected(c.begin(), c.end()), scale(c.size(), 0.0);
          const Scalar alpha = Scalar(0.5), beta = Scalar(-2);
          for (attn::Index i = 0; i < m; ++i) {
            for (attn::Index j = 0; j < n; ++j) {
              double sum = 0, magnitude = 0;
              for (attn::Index p = 0; p < k; ++p) {
                const double product = double(ta ? a[p * lda + i] : a[i * lda + p]) *
                                       double(tb ? b[j * ldb + p] : b[p * ldb + j]);
                sum += product;
                magnitude += std::abs(product);
              }
              expected[i * ldc + j] = alpha * sum + beta * double(c[i * ldc + j]);
              scale[i * ldc + j] =
                  std::abs(double(alpha)) * magnitude + std::abs(double(beta) * c[i * ldc + j]);
            }
          }
          attn::detail::gemm<ta, tb>(m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(),
                                     ldc);
          ASSERT_TRUE(attn_test::close_normwise(c, expected, attn_test::frobenius(scale),
                                                double(k + 2) * attn_test::epsilon<Scalar>()))
              << "m " << m << " n " << n << " k " << k << " layout " << layout;
        }
      }
    }
  }
}

template <typename Scalar>
void check_layouts() {
  check_layout<false, false, Scalar>();
  check_layout<true, false, Scalar>();
  check_layout<false, true, Scalar>();
  check_layout<true, true, Scalar>();
}

TEST(Gemm, MatchesATripleLoopInFloat) {
  check_layouts<float>();
}
TEST(Gemm, MatchesATripleLoopInDouble) {
  check_layouts<double>();
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
