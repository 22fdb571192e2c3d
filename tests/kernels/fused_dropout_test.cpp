// Dropout on the fused path: positional masks (PositionalDropout, a hash of seed, position, query
// and key) keep 1 - p of the weights, independently across positions; the fused forward equals
// dropout(softmax(...)) v computed here in double with that mask, across tile edges; and the
// fused backward equals central differences of the fused forward, whose mask is fixed by its seed.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "attn/kernels/dropout.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "support/gradient_check.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;

TEST(PositionalDropout, KeepsOneMinusPOfTheWeightsIndependently) {
  for (const double p : {0.1, 0.5, 0.9}) {
    const attn::detail::PositionalDropout<double> dropout(p, 12345);
    double kept = 0, both = 0, total = 0;
    for (Index n = 0; n < 4; ++n) {
      for (Index i = 0; i < 128; ++i) {
        for (Index j = 0; j < 256; ++j) {
          const bool keep = dropout.keeps(n, i, j);
          kept += keep;
          both += keep && dropout.keeps(n, i, j + 1);  // neighbours: independent
          ++total;
        }
      }
    }
    // Binomial: five standard deviations.
    const double sigma = std::sqrt(p * (1 - p) / total);
    EXPECT_NEAR(kept / total, 1 - p, 5 * sigma) << "p " << p;
    EXPECT_NEAR(both / total, (1 - p) * (1 - p), 5 * sigma) << "p " << p;
  }
  // Another seed, another position or another query gives another mask.
  const attn::detail::PositionalDropout<float> a(0.5f, 1), b(0.5f, 2);
  int same_seed = 0, same_position = 0, same_query = 0;
  for (Index j = 0; j < 1000; ++j) {
    same_seed += a.keeps(0, 0, j) == b.keeps(0, 0, j);
    same_position += a.keeps(0, 3, j) == a.keeps(1, 3, j);
    same_query += a.keeps(0, 3, j) == a.keeps(0, 4, j);
  }
  for (int agree : {same_seed, same_position, same_query}) {
    EXPECT_NEAR(agree, 500, 5 * std::sqrt(250.0));  // coin flips agree half the time
  }
}

struct Problem {
  attn::Tensor<double, 3> q, k, v;
};

Problem random_problem(Index heads, Index T, Index S, Index D, attn::Generator& generator) {
  Problem problem{attn::Tensor<double, 3>({heads, T, D}), attn::Tensor<double, 3>({heads, S, D}),
                  attn::Tensor<double, 3>({heads, S, D + 1})};
  for (auto* tensor : {&problem.q, &problem.k, &problem.v}) {
    for (Index i = 0; i < tensor->numel(); ++i) tensor->data()[i] = generator.uniform(-1.0, 1.0);
  }
  return problem;
}

// out = (softmax(mask(scale q k^T)) * M / (1 - p)) v, in double, M from the seed the kernel drew.
attn::Tensor<double, 3> expected_output(const Problem& problem, const attn::Mask& mask,
                                        double scale, double p, std::uint64_t seed) {
  const attn::detail::PositionalDropout<double> dropout(p, seed);
  const Index H = problem.q.size(0), T = problem.q.size(1), S = problem.k.size(1);
  const Index D = problem.q.size(2), Dv = problem.v.size(2);
  attn::Tensor<double, 3> out({H, T, Dv});
  std::vector<double> weights(static_cast<std::size_t>(S));
  for (Index n = 0; n < H; ++n) {
    for (Index i = 0; i < T; ++i) {
      double max = -INFINITY, sum = 0;
      for (Index j = 0; j < S; ++j) {
        double score = 0;
        for (Index d = 0; d < D; ++d) score += problem.q(n, i, d) * problem.k(n, j, d);
        weights[j] = mask.masked(i, j) ? -INFINITY : scale * score;
        max = std::max(max, weights[j]);
      }
      for (Index j = 0; j < S; ++j) {
        weights[j] = max == -INFINITY ? 0.0 : std::exp(weights[j] - max);
        sum += weights[j];
      }
      for (Index j = 0; j < S; ++j) {
        const double weight = sum > 0 ? weights[j] / sum : 0.0;
        const double dropped = dropout.keeps(n, i, j) ? weight / (1 - p) : 0.0;
        for (Index e = 0; e < Dv; ++e) out(n, i, e) += dropped * problem.v(n, j, e);
      }
    }
  }
  return out;
}

attn::AttentionOptions<double> fused_dropout(double p, attn::Generator& generator,
                                             const attn::Mask& mask) {
  attn::AttentionOptions<double> options;
  options.mask = mask;
  options.dropout = p;
  options.training = true;
  options.generator = &generator;
  options.path = attn::AttentionPath::fused;
  return options;
}

TEST(FusedDropout, ForwardEqualsDropoutOfTheSoftmaxWithItsMask) {
  attn::Generator data(3);
  // Sizes across the fused kernel's tile edges (128 queries, 512 keys), T != S, odd dims.
  for (const auto& [T, S] : {std::pair<Index, Index>{7, 9}, {130, 130}, {300, 600}}) {
    for (const attn::Mask& mask : {attn::Mask::none(), attn::Mask::causal()}) {
      const Problem problem = random_problem(2, T, S, 5, data);
      attn::Generator generator(11);
      attn::Generator copy = generator;  // the kernel draws its seed from the generator
      const std::uint64_t seed = attn::detail::draw_dropout_seed(copy);
      attn::Tensor<double, 3> out({2, T, 6});
      attn::AttentionCache<double> cache;
      attn::scaled_dot_product_attention<double, 3>(
          problem.q.view(), problem.k.view(), problem.v.view(), out.view(),
          fused_dropout(0.3, generator, mask), {}, &cache);
      EXPECT_EQ(cache.dropout_seed, seed);
      const auto expected = expected_output(problem, mask, 1 / std::sqrt(5.0), 0.3, seed);
      // Each output row is a sum of S weighted values of size <= ||v||: eps-level in S.
      EXPECT_TRUE(attn_test::close_normwise(out, expected, attn_test::frobenius(problem.v) / 0.7,
                                            1e-13 * double(S)))
          << "T " << T << " S " << S;
    }
  }
}

TEST(FusedDropout, TheNextForwardDrawsAnotherMask) {
  attn::Generator data(4), generator(5);
  const Problem problem = random_problem(1, 6, 6, 3, data);
  attn::Tensor<double, 3> first({1, 6, 4}), second({1, 6, 4});
  const auto options = fused_dropout(0.5, generator, attn::Mask::none());
  attn::scaled_dot_product_attention<double, 3>(problem.q.view(), problem.k.view(),
                                                problem.v.view(), first.view(), options);
  attn::scaled_dot_product_attention<double, 3>(problem.q.view(), problem.k.view(),
                                                problem.v.view(), second.view(), options);
  EXPECT_GT(attn_test::frobenius(attn_test::values_of(first)), 0.0);
  bool differ = false;
  for (Index i = 0; i < first.numel(); ++i) differ |= first.data()[i] != second.data()[i];
  EXPECT_TRUE(differ);
}

TEST(FusedDropout, BackwardMatchesCentralDifferences) {
  attn::Generator data(6);
  for (const attn::Mask& mask : {attn::Mask::none(), attn::Mask::causal()}) {
    Problem problem = random_problem(2, 7, 9, 4, data);
    attn::Tensor<double, 3> R({2, 7, 5});
    for (Index i = 0; i < R.numel(); ++i) R.data()[i] = data.uniform(-1.0, 1.0);
    const attn::Generator start(21);
    // The forward with the same generator state, so the same mask, every time.
    attn::Tensor<double, 3> out({2, 7, 5});
    attn::AttentionCache<double> cache;
    const auto forward = [&](attn::AttentionCache<double>* keep) {
      attn::Generator generator = start;
      attn::scaled_dot_product_attention<double, 3>(problem.q.view(), problem.k.view(),
                                                    problem.v.view(), out.view(),
                                                    fused_dropout(0.4, generator, mask), {}, keep);
      double loss = 0;
      for (Index i = 0; i < out.numel(); ++i) loss += out.data()[i] * R.data()[i];
      return loss;
    };
    forward(&cache);
    const double scale = attn_test::product_loss_scale(out, R);
    attn::Tensor<double, 3> dq(problem.q.shape()), dk(problem.k.shape()), dv(problem.v.shape());
    attn::scaled_dot_product_attention_backward<double, 3>(
        problem.q.view(), problem.k.view(), problem.v.view(), out.view(), R.view(), dq.view(),
        dk.view(), dv.view(), mask, cache);
    for (const auto& [name, operand, gradient] :
         {std::tuple{"q", &problem.q, &dq}, {"k", &problem.k, &dk}, {"v", &problem.v, &dv}}) {
      const auto numeric = attn_test::numeric_gradient(operand->data(), operand->numel(),
                                                       [&] { return forward(nullptr); });
      EXPECT_TRUE(attn_test::gradients_agree(gradient->data(), numeric, scale, name));
    }
  }
}

}  // namespace
