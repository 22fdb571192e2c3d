// The fused attention in bfloat16 arithmetic (AttentionOptions::compute, attn::Autocast): QK^T and
// PV (and the backward's products) on bfloat16-rounded operands with float sums, the softmax in
// float. Checked against the exact attention of the unrounded inputs (float64), forward and
// every gradient, elementwise, with bounds derived from the arithmetic:
//
//   u = 2^-9 (bfloat16's unit roundoff), e = float's epsilon.
//   Scores: a product of two rounded operands is off by at most (2u + u^2) of |q k|, and a float
//   sum of D terms by D e: |dS_ij| <= Delta_ij = scale ((2u + u^2) + D e) sum_d |q_id k_jd|.
//   Weights: a score error Delta moves a softmax weight by a factor within exp(+-2 Delta_i),
//   Delta_i = max_j Delta_ij: |dP_ij| <= delta_i P_ij, delta_i = exp(2 Delta_i) - 1.
//   out = P v with P and v rounded: |d out_id| <= ((1 + delta_i)(1 + u)^2 - 1) sum_j P_ij |v_jd|.
//   Backward (first order, each product's operands rounded once, the weights as above):
//     dV_jd = sum_i P_ij dO_id: ((1 + delta_i)(1 + u)^2 - 1) sum_i P_ij |dO_id|
//     dP_ij = sum_d dO_id v_jd: E_ij = (2u + u^2) sum_d |dO_id| |v_jd|
//     D_i = sum_d dO_id out_id (float, from attn's own out): G_i = sum_d |dO_id| |d out_id|
//     dS_ij = P_ij (dP_ij - D_i): F_ij = delta_i P_ij |dP_ij - D_i| + (1 + delta_i) P_ij (E_ij +
//     G_i) dQ_id = scale sum_j dS_ij k_jd: scale sum_j (F_ij + (2u + u^2)(|dS_ij| + F_ij)) |k_jd|
//     dK_jd = scale sum_i dS_ij q_id: the same over i with |q_id|.
//   Each bound also carries 4 (T + S + D) e times its magnitude for the float sums.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"

namespace {

using attn::Index;
using Matrix = Eigen::MatrixXd;

Matrix to_double(const attn::Tensor<float, 2>& t) {
  return attn::as_matrix(t.view()).cast<double>();
}

attn::Tensor<float, 2> random_tensor(Index rows, Index cols, double range,
                                     attn::Generator& generator) {
  attn::Tensor<float, 2> t({rows, cols});
  for (Index i = 0; i < t.numel(); ++i) {
    t.data()[i] = generator.uniform<float>(-float(range), float(range));
  }
  return t;
}

// max over elements of |actual - exact| / bound (passes at <= 1).
double worst(const attn::Tensor<float, 2>& actual, const Matrix& exact, const Matrix& bound) {
  const Matrix error = (to_double(actual) - exact).cwiseAbs();
  return error.cwiseQuotient(bound).maxCoeff();
}

void check_bfloat16_attention(Index T, Index S, Index D, bool causal, double range) {
  attn::Generator generator(static_cast<std::uint64_t>(T * 1000 + S * 10 + D + causal));
  const auto q = random_tensor(T, D, range, generator);
  const auto k = random_tensor(S, D, range, generator);
  const auto v = random_tensor(S, D, 1, generator);
  const auto grad_out = random_tensor(T, D, 1, generator);
  const double scale = 1 / std::sqrt(double(D));
  const attn::Mask mask = causal ? attn::Mask::causal() : attn::Mask::none();

  attn::AttentionOptions<float> options;
  options.mask = mask;
  options.path = attn::AttentionPath::fused;
  options.compute = attn::Compute::bfloat16;
  attn::Tensor<float, 2> out({T, D}), grad_q({T, D}), grad_k({S, D}), grad_v({S, D});
  attn::AttentionCache<float> cache;
  attn::scaled_dot_product_attention<float, 2>(q.view(), k.view(), v.view(), out.view(), options,
                                               {}, &cache);
  attn::scaled_dot_product_attention_backward<float, 2>(q.view(), k.view(), v.view(), out.view(),
                                                        grad_out.view(), grad_q.view(),
                                                        grad_k.view(), grad_v.view(), mask, cache);

  // The exact attention of the float inputs, in double.
  const Matrix Q = to_double(q), K = to_double(k), V = to_double(v), dO = to_double(grad_out);
  Matrix scores = scale * Q * K.transpose();
  const auto visible = [&](Index i, Index j) { return !causal || j <= i + (S - T); };
  Matrix P = Matrix::Zero(T, S);
  for (Index i = 0; i < T; ++i) {
    double top = -std::numeric_limits<double>::infinity();
    for (Index j = 0; j < S; ++j) {
      if (visible(i, j)) top = std::max(top, scores(i, j));
    }
    for (Index j = 0; j < S; ++j) P(i, j) = visible(i, j) ? std::exp(scores(i, j) - top) : 0;
    P.row(i) /= P.row(i).sum();
  }
  const Matrix O = P * V;
  const Matrix dV = P.transpose() * dO;
  const Matrix dP = dO * V.transpose();
  const Eigen::VectorXd rows_dot = (dO.cwiseProduct(O)).rowwise().sum();
  const Matrix dS = P.cwiseProduct(dP.colwise() - rows_dot);
  const Matrix dQ = scale * dS * K, dK = scale * dS.transpose() * Q;

  // The bounds above.
  const double u = std::ldexp(1.0, -9), e = std::numeric_limits<float>::epsilon();
  const double product = 2 * u + u * u, sums = 4 * double(T + S + D) * e;
  const Matrix qk = scale * (Q.cwiseAbs() * K.cwiseAbs().transpose()) * (product + double(D) * e);
  Eigen::VectorXd delta(T);
  for (Index i = 0; i < T; ++i) {
    double most = 0;
    for (Index j = 0; j < S; ++j) {
      if (visible(i, j)) most = std::max(most, qk(i, j));
    }
    delta(i) = std::exp(2 * most) - 1;
  }
  const Eigen::ArrayXd weight_factor = (1 + delta.array()) * (1 + u) * (1 + u) - 1;
  const Matrix out_magnitude = P * V.cwiseAbs();
  const Matrix out_bound = (out_magnitude.array().colwise() * (weight_factor + sums)).matrix();
  EXPECT_LE(worst(out, O, out_bound), 1) << "out, T " << T << " S " << S << " D " << D;

  const Matrix dV_magnitude = P.transpose() * dO.cwiseAbs();
  Matrix dV_bound = Matrix::Zero(S, D);
  for (Index i = 0; i < T; ++i) {
    dV_bound += (weight_factor(i) + sums) * P.row(i).transpose() * dO.row(i).cwiseAbs();
  }
  EXPECT_LE(worst(grad_v, dV, dV_bound), 1) << "dV";

  const Matrix E = product * dO.cwiseAbs() * V.cwiseAbs().transpose();
  const Eigen::VectorXd G = (dO.cwiseAbs().cwiseProduct(out_bound)).rowwise().sum();
  Matrix F(T, S);
  for (Index i = 0; i < T; ++i) {
    for (Index j = 0; j < S; ++j) {
      F(i, j) = delta(i) * P(i, j) * std::abs(dP(i, j) - rows_dot(i)) +
                (1 + delta(i)) * P(i, j) * (E(i, j) + G(i) + sums * std::abs(dP(i, j)));
    }
  }
  const Matrix dS_error = F + product * (dS.cwiseAbs() + F);
  const Matrix dQ_bound = scale * (dS_error * K.cwiseAbs() + sums * dS.cwiseAbs() * K.cwiseAbs());
  const Matrix dK_bound = scale * (dS_error.transpose() * Q.cwiseAbs() +
                                   sums * dS.cwiseAbs().transpose() * Q.cwiseAbs());
  EXPECT_LE(worst(grad_q, dQ, dQ_bound), 1) << "dQ";
  EXPECT_LE(worst(grad_k, dK, dK_bound), 1) << "dK";

  // And the bounds are not vacuous: the bfloat16 run is further from the exact result than the
  // float one's rounding would allow, so the test sees the arithmetic it claims.
  attn::Tensor<float, 2> float_out({T, D});
  options.compute = attn::Compute::scalar;
  attn::scaled_dot_product_attention<float, 2>(q.view(), k.view(), v.view(), float_out.view(),
                                               options);
  EXPECT_GT((to_double(out) - to_double(float_out)).cwiseAbs().maxCoeff(),
            100 * e * out_magnitude.maxCoeff())
      << "the bfloat16 products ran in float";
}

// Tiles: 128 queries, 512 keys; odd sizes pad pairs and register tiles; causal skips tiles.
TEST(FusedBFloat16, ForwardAndGradientsWithinTheDerivedBounds) {
  check_bfloat16_attention(37, 37, 16, true, 1);
  check_bfloat16_attention(200, 600, 64, false, 1);
  check_bfloat16_attention(300, 300, 64, true, 2);
  check_bfloat16_attention(5, 77, 33, false, 1);
  // A last query tile of one row runs in float in the forward: its backward must too.
  check_bfloat16_attention(129, 129, 32, true, 1);
}

// The layers follow the calling thread's Autocast: options made inside a scope compute in
// bfloat16, outside it in Scalar.
TEST(FusedBFloat16, OptionsFollowTheAutocastScope) {
  EXPECT_EQ(attn::AttentionOptions<float>().compute, attn::Compute::scalar);
  const attn::Autocast autocast;
  EXPECT_EQ(attn::AttentionOptions<float>().compute, attn::Compute::bfloat16);
}

}  // namespace
