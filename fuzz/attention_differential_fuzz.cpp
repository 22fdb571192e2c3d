// Differential fuzzing of the shared kernel: the fused (tiled, online-softmax, FlashAttention-2
// backward) path against the reference path (materialised scores, the book's stages), forward
// and backward, on shapes, masks, scales and values decoded from the fuzzer's bytes. Any
// disagreement beyond rounding, any exception, or any sanitizer report is a crash.
//
// "Beyond rounding" is normwise against the problem scales of tests/support/attention_bounds.hpp
// (||V|| for out, |scale| ||dO|| ||V|| ||K|| for dq, |scale| ||dO|| ||V|| ||Q|| for dk, ||dO||
// for dv), never relative to the results themselves, which vanish in exact arithmetic for S = 1
// (dq, dk), for fully masked rows and, summed over keys, for dk. Tolerance 4 eps (L + sqrt(n)),
// L the largest |logit| the case allows and n its longest reduction (tests/support/rounding.hpp),
// in double and in float on the same case. The quantities that are zero in exact arithmetic are
// checked on purpose, on each path: dq and dk when every query sees at most one key (S = 1, a
// causal offset, a dense mask), and sum_j dk_j always.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../tests/support/attention_bounds.hpp"
#include "../tests/support/rounding.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/tensor.hpp"

namespace {

using attn::Index;

struct Case {
  Index batch, tokens, keys, dim, value_dim;
  int mask_kind;  // 0 none, 1 causal with an offset, 2 explicit matrix, 3 sliding window
  Index causal_offset, window;
  bool padded;  // key lengths per sequence on top of the mask
  double mask_density;
  std::uint64_t seed;
  double value_range;
  double scale;  // 0: the default 1/sqrt(D)
};

Case decode(FuzzedDataProvider& input) {
  Case c{};
  c.batch = input.ConsumeIntegralInRange<Index>(1, 3);
  // Mostly small, sometimes past one 128-query or 256-key tile so tile edges are crossed.
  const bool large = input.ConsumeIntegralInRange<int>(0, 7) == 0;
  c.tokens = input.ConsumeIntegralInRange<Index>(0, large ? 300 : 40);
  c.keys = input.ConsumeIntegralInRange<Index>(0, large ? 600 : 40);
  c.dim = input.ConsumeIntegralInRange<Index>(1, 24);
  c.value_dim = input.ConsumeIntegralInRange<Index>(1, 24);
  c.mask_kind = input.ConsumeIntegralInRange<int>(0, 3);
  c.causal_offset = input.ConsumeIntegralInRange<Index>(-8, 8);
  c.window = input.ConsumeIntegralInRange<Index>(1, large ? 300 : 24);
  c.padded = input.ConsumeBool();
  c.mask_density = input.ConsumeProbability<double>();
  c.seed = input.ConsumeIntegral<std::uint64_t>();
  c.value_range = input.PickValueInArray({0.1, 1.0, 4.0, 30.0});
  c.scale = input.PickValueInArray({0.0, 0.0, 1.0, 0.01, 3.0, -0.5});
  return c;
}

template <typename Scalar>
struct Inputs {
  attn::Tensor<Scalar, 3> q, k, v, grad_out;
};

template <typename Scalar>
struct Run {
  attn::Tensor<Scalar, 3> out, grad_q, grad_k, grad_v;
};

template <typename Scalar>
Inputs<Scalar> inputs_of(const Case& c, const std::vector<double>& values) {
  Inputs<Scalar> in{attn::Tensor<Scalar, 3>({c.batch, c.tokens, c.dim}),
                    attn::Tensor<Scalar, 3>({c.batch, c.keys, c.dim}),
                    attn::Tensor<Scalar, 3>({c.batch, c.keys, c.value_dim}),
                    attn::Tensor<Scalar, 3>({c.batch, c.tokens, c.value_dim})};
  std::size_t next = 0;
  for (auto* t : {&in.q, &in.k, &in.v, &in.grad_out}) {
    for (Index i = 0; i < t->numel(); ++i) t->data()[i] = static_cast<Scalar>(values[next++]);
  }
  return in;
}

template <typename Scalar>
Run<Scalar> run(const Case& c, const Inputs<Scalar>& in, const attn::Mask& mask,
                attn::AttentionPath path) {
  attn::AttentionOptions<Scalar> options;
  options.mask = mask;
  options.path = path;
  if (c.scale != 0.0) options.scale = static_cast<Scalar>(c.scale);
  Run<Scalar> result{attn::Tensor<Scalar, 3>({c.batch, c.tokens, c.value_dim}),
                     attn::Tensor<Scalar, 3>(in.q.shape()), attn::Tensor<Scalar, 3>(in.k.shape()),
                     attn::Tensor<Scalar, 3>(in.v.shape())};
  attn::AttentionCache<Scalar> cache;
  attn::scaled_dot_product_attention(in.q.view(), in.k.view(), in.v.view(), result.out.view(),
                                     options, {}, &cache);
  attn::scaled_dot_product_attention_backward<Scalar, 3>(
      in.q.view(), in.k.view(), in.v.view(), result.out.view(), in.grad_out.view(),
      result.grad_q.view(), result.grad_k.view(), result.grad_v.view(), options.mask, cache);
  return result;
}

/// Aborts unless ||actual - expected||_F <= tolerance * scale (expected null: ||actual||_F, for a
/// quantity that is zero in exact arithmetic).
void expect_close(const char* what, const std::vector<double>& actual,
                  const std::vector<double>* expected, double scale, double tolerance,
                  const Case& c) {
  double sum = 0, max_abs = 0;
  std::size_t worst = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double d = std::abs(actual[i] - (expected != nullptr ? (*expected)[i] : 0.0));
    const double e = std::isnan(d) ? INFINITY : d;
    sum += e * e;
    if (e > max_abs) {
      max_abs = e;
      worst = i;
    }
  }
  const double error = std::sqrt(sum);
  if (error <= tolerance * scale) return;
  std::fprintf(stderr,
               "%s: normwise error %.17g > tolerance %g x problem scale %g; max abs error %g at "
               "%zu: %.17g vs %.17g (B %ld T %ld S %ld D %ld Dv %ld mask %d offset %ld window %ld "
               "padded %d density %g "
               "scale %g range %g)\n",
               what, error, tolerance, scale, max_abs, worst, actual.empty() ? 0.0 : actual[worst],
               expected != nullptr && !actual.empty() ? (*expected)[worst] : 0.0,
               static_cast<long>(c.batch), static_cast<long>(c.tokens), static_cast<long>(c.keys),
               static_cast<long>(c.dim), static_cast<long>(c.value_dim), c.mask_kind,
               static_cast<long>(c.causal_offset), static_cast<long>(c.window), int(c.padded),
               c.mask_density, c.scale, c.value_range);
  std::abort();
}

template <typename Scalar>
std::vector<double> values_of(const attn::Tensor<Scalar, 3>& t) {
  return std::vector<double>(t.data(), t.data() + t.numel());
}

/// sum_j dk_j of each problem: zero in exact arithmetic.
template <typename Scalar>
std::vector<double> key_gradient_sums(const attn::Tensor<Scalar, 3>& dk) {
  std::vector<double> sums(static_cast<std::size_t>(dk.size(0) * dk.size(2)), 0.0);
  for (Index b = 0; b < dk.size(0); ++b)
    for (Index j = 0; j < dk.size(1); ++j)
      for (Index d = 0; d < dk.size(2); ++d) sums[b * dk.size(2) + d] += dk(b, j, d);
  return sums;
}

template <typename Scalar>
void compare_paths(const Case& c, const std::vector<double>& values, const attn::Mask& mask) {
  const auto in = inputs_of<Scalar>(c, values);
  const auto fused = run<Scalar>(c, in, mask, attn::AttentionPath::fused);
  const auto reference = run<Scalar>(c, in, mask, attn::AttentionPath::reference);
  const double scale = c.scale != 0.0 ? static_cast<double>(static_cast<Scalar>(c.scale))
                                      : 1 / std::sqrt(static_cast<double>(c.dim));
  const auto bounds = attn_test::attention_bounds(in.q, in.k, in.v, in.grad_out, scale);
  const double tolerance = attn_test::rounding_tolerance<Scalar>(bounds.logits, bounds.length);
  const auto out = values_of(reference.out), grad_q = values_of(reference.grad_q),
             grad_k = values_of(reference.grad_k), grad_v = values_of(reference.grad_v);
  expect_close("out", values_of(fused.out), &out, bounds.out, tolerance, c);
  expect_close("grad_v", values_of(fused.grad_v), &grad_v, bounds.grad_v, tolerance, c);
  // With at most one visible key per query (S = 1, a causal offset or a dense matrix mask) every
  // weight is 1 or 0, so dS = 0 and dq, dk vanish in exact arithmetic.
  bool one_key = true;
  for (Index b = 0; b < c.batch && one_key; ++b) {
    for (Index i = 0; i < c.tokens && one_key; ++i) {
      Index visible = 0;
      for (Index j = 0; j < c.keys; ++j) visible += mask.masked(i, j, b) ? 0 : 1;
      one_key = visible <= 1;
    }
  }
  for (const Run<Scalar>* path : {&fused, &reference}) {
    const bool is_fused = path == &fused;
    expect_close(is_fused ? "fused sum_j dk_j" : "reference sum_j dk_j",
                 key_gradient_sums(path->grad_k), nullptr, bounds.grad_k, tolerance, c);
    if (one_key) {
      expect_close(is_fused ? "fused dq (one key per query)" : "reference dq (one key per query)",
                   values_of(path->grad_q), nullptr, bounds.grad_q, tolerance, c);
      expect_close(is_fused ? "fused dk (one key per query)" : "reference dk (one key per query)",
                   values_of(path->grad_k), nullptr, bounds.grad_k, tolerance, c);
    }
  }
  if (!one_key) {
    expect_close("grad_q", values_of(fused.grad_q), &grad_q, bounds.grad_q, tolerance, c);
    expect_close("grad_k", values_of(fused.grad_k), &grad_k, bounds.grad_k, tolerance, c);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const Case c = decode(input);
  // Values: the remaining bytes first (so the fuzzer steers them), then a seeded generator.
  const auto count =
      static_cast<std::size_t>(c.batch * (2 * c.tokens * c.dim + c.keys * c.dim +
                                          c.keys * c.value_dim + c.tokens * c.value_dim));
  std::vector<double> values(count);
  attn::Generator generator(c.seed);
  for (auto& value : values) {
    value = input.remaining_bytes() >= 2
                ? (input.ConsumeIntegral<std::int16_t>() / 32768.0) * c.value_range
                : generator.uniform<double>(-c.value_range, c.value_range);
  }
  attn::Tensor<bool, 2> masked({c.tokens, c.keys});
  for (Index i = 0; i < masked.numel(); ++i) {
    masked.data()[i] = generator.uniform<double>() < c.mask_density;
  }
  attn::Tensor<Index, 1> lengths({c.batch});
  for (Index b = 0; b < c.batch; ++b) {
    lengths(b) = std::min<Index>(
        c.keys, static_cast<Index>(generator.uniform<double>() * static_cast<double>(c.keys + 1)));
  }
  attn::Mask mask = c.mask_kind == 0   ? attn::Mask::none()
                    : c.mask_kind == 1 ? attn::Mask::causal(c.causal_offset)
                    : c.mask_kind == 2 ? attn::Mask::matrix(masked.view())
                                       : attn::Mask::sliding_window(c.window, c.causal_offset);
  if (c.padded) mask = mask.with_key_lengths(lengths.view());
  compare_paths<double>(c, values, mask);
  compare_paths<float>(c, values, mask);
  return 0;
}
