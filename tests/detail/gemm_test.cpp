// detail::gemm has two backends, OpenBLAS (when it is the system BLAS) and Eigen. Both must give
// the product a plain triple loop gives, for every layout the kernels use.
#include "attn/detail/gemm.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "attn/random/generator.hpp"

namespace {

template <typename Scalar>
void check_layouts(double tolerance) {
  attn::Generator generator(3);
  for (int layout = 0; layout < 4; ++layout) {
    const bool ta = layout & 1, tb = layout & 2;
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
          attn::detail::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(),
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

class Gemm : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    saved_ = attn::detail::blas_enabled().load();
    if (GetParam() && !saved_) GTEST_SKIP() << "OpenBLAS is not the system BLAS here";
    attn::detail::blas_enabled() = GetParam();
  }
  void TearDown() override { attn::detail::blas_enabled() = saved_; }
  bool saved_ = false;
};

TEST_P(Gemm, MatchesATripleLoopInFloat) {
  check_layouts<float>(1e-5);
}
TEST_P(Gemm, MatchesATripleLoopInDouble) {
  check_layouts<double>(1e-13);
}

INSTANTIATE_TEST_SUITE_P(Backends, Gemm, ::testing::Values(false, true),
                         [](const auto& backend) { return backend.param ? "OpenBLAS" : "Eigen"; });

}  // namespace
