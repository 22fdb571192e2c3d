// Problem scales of the shared attention kernel (attn/kernels/scaled_dot_product_attention.hpp):
// bounds, from q, k, v and dout alone, on the size of what the kernel computes, for comparing its
// results normwise (tests/support/normwise.hpp) in the tests and in the differential fuzzer
// (fuzz/), which is why this header needs Eigen and attn's tensors only, not GoogleTest.
//
// One problem of T query rows and S key rows; |.| of a row is its Euclidean norm; P are the
// softmax weights (each row sums to 1, or is 0 when fully masked); keep = 1 / (1 - dropout), 1
// without dropout (the dropped weights P' = P * mask * keep sum to at most keep per row):
//   logits  |scale q_i . k_j| <= |scale| max_i |q_i| max_j |k_j|                (= L, `logits`)
//   out     o_i = sum_j P'_ij v_j, so |o_i| <= keep vmax and ||out||_F <= keep vmax sqrt(T)
//   dv      dv_j = sum_i P'_ij do_i, so sum_j |dv_j| <= keep sum_i |do_i|
//   dS      dP_ij = keep mask_ij do_i . v_j, so |dP_ij| <= keep |do_i| vmax; dS_ij = P_ij (dP_ij -
//           sum_l P_il dP_il), so sum_j |dS_ij| <= 2 keep |do_i| vmax
//   dq      dq_i = scale sum_j dS_ij k_j, so |dq_i| <= 2 |scale| keep vmax kmax |do_i|
//   dk      dk_j = scale sum_i dS_ij q_i, so sum_j |dk_j| <= 2 |scale| keep vmax sum_i |do_i| |q_i|
// with vmax = max_j |v_j| and kmax = max_j |k_j|. dk's bound is the |scale| ||dO|| ||V|| ||Q||
// scale, and it does not shrink when dk does: with S = 1 every weight is exactly 1, so dS = 0
// and dk is zero in exact arithmetic; and for any S, sum_j dk_j is zero in exact arithmetic,
// because softmax ignores a shift of every key by one vector c (it adds scale q_i . c to every
// logit of row i). That is the root of every attention layer's vanishing key-bias gradient.
// A sum of row norms bounds both the Frobenius norm and the norm of the sum of the rows (which is
// what a bias gradient is). Problems (batches, heads) combine: Frobenius bounds in quadrature,
// sums of row norms by addition, logits by the maximum.
#ifndef ATTN_TESTS_SUPPORT_ATTENTION_BOUNDS_HPP
#define ATTN_TESTS_SUPPORT_ATTENTION_BOUNDS_HPP

#include <Eigen/Core>
#include <algorithm>
#include <attn/tensor/tensor.hpp>
#include <cmath>
#include <type_traits>
#include <vector>

namespace attn_test {

using RowMatrixd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct AttentionBounds {
  double logits = 0;       ///< max |logit|
  double out = 0;          ///< bounds ||out||_F
  double grad_q = 0;       ///< bounds ||dq||_F
  double grad_q_rows = 0;  ///< bounds sum_i |dq_i|
  double grad_k = 0;       ///< bounds sum_j |dk_j|, so ||dk||_F and |sum_j dk_j| too
  double grad_v = 0;       ///< bounds sum_j |dv_j|
  attn::Index length = 0;  ///< the longest reduction, max(T, S, D, Dv)

  /// Adds one problem: q (T, D), k (S, D), v (S, Dv) and, unless null, dout (T, Dv).
  void add(const RowMatrixd& q, const RowMatrixd& k, const RowMatrixd& v, const RowMatrixd* dout,
           double scale, double keep = 1) {
    const auto max_norm = [](const RowMatrixd& m) {
      return m.rows() == 0 ? 0.0 : m.rowwise().norm().maxCoeff();
    };
    const double s = std::abs(scale), kmax = max_norm(k), vmax = max_norm(v);
    const auto T = static_cast<double>(q.rows());
    logits = std::max(logits, s * max_norm(q) * kmax);
    out = std::hypot(out, keep * vmax * std::sqrt(T));
    if (dout != nullptr && q.rows() > 0) {
      const Eigen::VectorXd g = dout->rowwise().norm(), qn = q.rowwise().norm();
      grad_q = std::hypot(grad_q, 2 * s * keep * vmax * kmax * g.norm());
      grad_q_rows += 2 * s * keep * vmax * kmax * g.sum();
      grad_k += 2 * s * keep * vmax * g.dot(qn);
      grad_v += keep * g.sum();
    }
    length = std::max({length, q.rows(), k.rows(), q.cols(), v.cols()});
  }
};

/// The (rows, cols) matrices of a tensor or view of rank >= 2, one per index of its leading dims.
template <typename T, int Rank>
std::vector<RowMatrixd> matrices_of(const attn::TensorView<T, Rank>& view) {
  static_assert(Rank >= 2, "matrices_of needs a tensor of rank 2 or more");
  using Plain = std::remove_const_t<T>;
  const attn::Tensor<Plain, Rank> copy(view);  // contiguous
  const attn::Index rows = view.size(Rank - 2), cols = view.size(Rank - 1);
  attn::Index count = 1;
  for (int d = 0; d < Rank - 2; ++d) count *= view.size(d);
  std::vector<RowMatrixd> result;
  for (attn::Index n = 0; n < count; ++n) {
    using Map =
        Eigen::Map<const Eigen::Matrix<Plain, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
    result.push_back(Map(copy.data() + n * rows * cols, rows, cols).template cast<double>());
  }
  return result;
}
template <typename T, int Rank>
std::vector<RowMatrixd> matrices_of(const attn::Tensor<T, Rank>& tensor) {
  return matrices_of(tensor.view());
}

/// Bounds for the kernel's problems q, k, v (and dout): tensors or views of one rank >= 2 whose
/// leading dims index independent problems, as the kernel takes them.
template <typename Q, typename K, typename V, typename G>
AttentionBounds attention_bounds(const Q& q, const K& k, const V& v, const G& dout, double scale,
                                 double keep = 1) {
  const auto qs = matrices_of(q), ks = matrices_of(k), vs = matrices_of(v), gs = matrices_of(dout);
  AttentionBounds bounds;
  for (std::size_t n = 0; n < qs.size(); ++n) bounds.add(qs[n], ks[n], vs[n], &gs[n], scale, keep);
  return bounds;
}

/// The same for a forward alone (no dout): logits and out.
template <typename Q, typename K, typename V>
AttentionBounds attention_forward_bounds(const Q& q, const K& k, const V& v, double scale,
                                         double keep = 1) {
  const auto qs = matrices_of(q), ks = matrices_of(k), vs = matrices_of(v);
  AttentionBounds bounds;
  for (std::size_t n = 0; n < qs.size(); ++n) bounds.add(qs[n], ks[n], vs[n], nullptr, scale, keep);
  return bounds;
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_ATTENTION_BOUNDS_HPP
