// Differential fuzzing of the shared kernel: the fused (tiled, online-softmax, FlashAttention-2
// backward) path against the reference path (materialised scores, the book's stages), forward
// and backward, on shapes, masks, scales and values decoded from the fuzzer's bytes. Any
// disagreement beyond rounding, any exception, or any sanitizer report is a crash.
//
// Double precision keeps "beyond rounding" tight (1e-9 relative); a float run on the same case
// checks the float instantiation with a float tolerance.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/tensor.hpp"

namespace {

using attn::Index;

struct Case {
  Index batch, tokens, keys, dim, value_dim;
  int mask_kind;  // 0 none, 1 causal with an offset, 2 explicit matrix
  Index causal_offset;
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
  c.mask_kind = input.ConsumeIntegralInRange<int>(0, 2);
  c.causal_offset = input.ConsumeIntegralInRange<Index>(-8, 8);
  c.mask_density = input.ConsumeProbability<double>();
  c.seed = input.ConsumeIntegral<std::uint64_t>();
  c.value_range = input.PickValueInArray({0.1, 1.0, 4.0, 30.0});
  c.scale = input.PickValueInArray({0.0, 0.0, 1.0, 0.01, 3.0, -0.5});
  return c;
}

template <typename Scalar>
struct Run {
  attn::Tensor<Scalar, 3> out, grad_q, grad_k, grad_v;
};

template <typename Scalar>
Run<Scalar> run(const Case& c, const std::vector<double>& values, const attn::Mask& mask,
                attn::AttentionPath path) {
  const auto fill = [&](attn::Tensor<Scalar, 3>& t, std::size_t& next) {
    for (Index i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<Scalar>(values[next++]);
  };
  attn::Tensor<Scalar, 3> q({c.batch, c.tokens, c.dim}), k({c.batch, c.keys, c.dim}),
      v({c.batch, c.keys, c.value_dim}), grad_out({c.batch, c.tokens, c.value_dim});
  std::size_t next = 0;
  fill(q, next);
  fill(k, next);
  fill(v, next);
  fill(grad_out, next);
  attn::AttentionOptions<Scalar> options;
  options.mask = mask;
  options.path = path;
  if (c.scale != 0.0) options.scale = static_cast<Scalar>(c.scale);
  Run<Scalar> result{attn::Tensor<Scalar, 3>({c.batch, c.tokens, c.value_dim}),
                     attn::Tensor<Scalar, 3>(q.shape()), attn::Tensor<Scalar, 3>(k.shape()),
                     attn::Tensor<Scalar, 3>(v.shape())};
  attn::AttentionCache<Scalar> cache;
  attn::scaled_dot_product_attention(q.view(), k.view(), v.view(), result.out.view(), options, {},
                                     &cache);
  attn::scaled_dot_product_attention_backward<Scalar, 3>(
      q.view(), k.view(), v.view(), result.out.view(), grad_out.view(), result.grad_q.view(),
      result.grad_k.view(), result.grad_v.view(), options.mask, cache);
  return result;
}

template <typename Scalar>
void expect_close(const char* what, const attn::Tensor<Scalar, 3>& fused,
                  const attn::Tensor<Scalar, 3>& reference, double tolerance, const Case& c) {
  double largest = 0;
  for (Index i = 0; i < reference.numel(); ++i) {
    largest = std::max(largest, std::abs(static_cast<double>(reference.data()[i])));
  }
  for (Index i = 0; i < reference.numel(); ++i) {
    const double a = fused.data()[i], b = reference.data()[i];
    const bool both_nan = std::isnan(a) && std::isnan(b);
    if (!both_nan && !(std::abs(a - b) <= tolerance * (1 + largest))) {
      std::fprintf(stderr,
                   "%s differs at %ld: fused %.17g reference %.17g (B %ld T %ld S %ld D %ld Dv %ld "
                   "mask %d offset %ld density %g scale %g range %g)\n",
                   what, static_cast<long>(i), a, b, static_cast<long>(c.batch),
                   static_cast<long>(c.tokens), static_cast<long>(c.keys), static_cast<long>(c.dim),
                   static_cast<long>(c.value_dim), c.mask_kind, static_cast<long>(c.causal_offset),
                   c.mask_density, c.scale, c.value_range);
      std::abort();
    }
  }
}

template <typename Scalar>
void compare_paths(const Case& c, const std::vector<double>& values, const attn::Mask& mask,
                   double tolerance) {
  const auto fused = run<Scalar>(c, values, mask, attn::AttentionPath::fused);
  const auto reference = run<Scalar>(c, values, mask, attn::AttentionPath::reference);
  expect_close("out", fused.out, reference.out, tolerance, c);
  expect_close("grad_q", fused.grad_q, reference.grad_q, tolerance, c);
  expect_close("grad_k", fused.grad_k, reference.grad_k, tolerance, c);
  expect_close("grad_v", fused.grad_v, reference.grad_v, tolerance, c);
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
  const attn::Mask mask = c.mask_kind == 0   ? attn::Mask::none()
                          : c.mask_kind == 1 ? attn::Mask::causal(c.causal_offset)
                                             : attn::Mask::matrix(masked.view());
  compare_paths<double>(c, values, mask, 1e-9);
  // Float: logits up to |scale| * D * range^2 lose ~1e-7 of their size to rounding, and the
  // weights inherit it; tolerate that much.
  const double logit_bound =
      std::max(1.0, std::abs(c.scale == 0 ? 1.0 : c.scale) * static_cast<double>(c.dim) *
                        c.value_range * c.value_range);
  compare_paths<float>(c, values, mask, 1e-5 * logit_bound);
  return 0;
}
