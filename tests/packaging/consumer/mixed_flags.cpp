// A consumer compiled with other flags than the attn::compiled it links (packaging.mixed_flags.*:
// a -march=native program on a library built for baseline x86-64, and a baseline program on a
// library built with -march=native). Every tensor lives on the program's side; the library's
// kernels see raw pointers, shapes and strides only, so both pairs must run and agree with
// values that come from outside the library: the book's numbers, and the reference path's and
// scalar products' own results for the wide kernels.
#include <attn/attn.hpp>
#include <cmath>
#include <cstdio>

namespace {

float max_difference(const attn::TensorView<const float, 3>& a,
                     const attn::TensorView<const float, 3>& b) {
  float worst = 0;
  for (attn::Index i = 0; i < a.size(0); ++i) {
    for (attn::Index j = 0; j < a.size(1); ++j) {
      for (attn::Index k = 0; k < a.size(2); ++k) {
        worst = std::max(worst, std::abs(a(i, j, k) - b(i, j, k)));
      }
    }
  }
  return worst;
}

}  // namespace

int main() {
  std::printf("attn %s kernels (cpu %s)\n", attn::isa_name(attn::isa()),
              attn::isa_name(attn::cpu_isa()));
  bool ok = true;

  // 1. The book's multi-head attention (section 3.6.2), torch.manual_seed(123)'s weights.
  const attn::Tensor<float, 2> inputs(
      {6, 3}, {0.43f, 0.15f, 0.89f, 0.55f, 0.87f, 0.66f, 0.57f, 0.85f, 0.64f, 0.22f, 0.58f, 0.33f,
               0.77f, 0.25f, 0.10f, 0.05f, 0.80f, 0.55f});
  attn::Tensor<float, 3> batch({2, 6, 3});
  for (attn::Index b = 0; b < 2; ++b) {
    attn::as_matrix(attn::select(batch.view(), 0, b)) = attn::as_matrix(inputs.view());
  }
  attn::MultiHeadAttention<float> mha(3, 2, 6, 0.0f, 2, false, attn::Generator(123));
  mha.eval();
  const attn::Tensor<float, 3> context = mha.forward(batch.view());
  const float book[6][2] = {{0.3190f, 0.4858f}, {0.2943f, 0.3897f}, {0.2856f, 0.3593f},
                            {0.2693f, 0.3873f}, {0.2639f, 0.3928f}, {0.2575f, 0.4028f}};
  float book_error = 0;
  for (attn::Index b = 0; b < 2; ++b) {
    for (attn::Index t = 0; t < 6; ++t) {
      for (attn::Index d = 0; d < 2; ++d) {
        book_error = std::max(book_error, std::abs(context.view()(b, t, d) - book[t][d]));
      }
    }
  }
  std::printf("book's MultiHeadAttention: max |attn - book| %.2e (printed to 4 decimals)\n",
              static_cast<double>(book_error));
  ok = ok && book_error <= 5e-5f;

  // 2. The fused kernel against the reference path, causal, GPT-2's head size: wide vectors.
  attn::Generator generator(7);
  attn::Tensor<float, 4> q({2, 4, 70, 64}), k({2, 4, 70, 64}), v({2, 4, 70, 64});
  for (auto* t : {&q, &k, &v}) {
    for (attn::Index i = 0; i < t->numel(); ++i) t->data()[i] = generator.normal<float>();
  }
  attn::Tensor<float, 4> fused({2, 4, 70, 64}), reference({2, 4, 70, 64});
  attn::AttentionOptions<float> options;
  options.mask = attn::Mask::causal();
  options.path = attn::AttentionPath::fused;
  attn::scaled_dot_product_attention<float, 4>(q.view(), k.view(), v.view(), fused.view(), options);
  options.path = attn::AttentionPath::reference;
  attn::scaled_dot_product_attention<float, 4>(q.view(), k.view(), v.view(), reference.view(),
                                               options);
  float path_error = 0;
  for (attn::Index i = 0; i < fused.numel(); ++i) {
    path_error = std::max(path_error, std::abs(fused.data()[i] - reference.data()[i]));
  }
  std::printf("fused vs reference attention (2, 4, 70, 64): max difference %.2e\n",
              static_cast<double>(path_error));
  ok = ok && path_error <= 1e-5f;  // outputs are averages of unit normals: |out| <= ~4

  // 3. bfloat16 weights: one row at a time (the packed product) against nine rows at once
  //    (the float product of the same rounded weights).
  attn::Linear<float> linear(256, 96, true, attn::Generator(3));
  linear.set_weight_format(attn::WeightFormat::bfloat16);
  attn::Tensor<float, 3> x({1, 9, 256});
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.normal<float>();
  const attn::Tensor<float, 3> all_rows = linear.forward(x.view());
  attn::Tensor<float, 3> row_by_row({1, 9, 96});
  for (attn::Index r = 0; r < 9; ++r) {
    const attn::Tensor<float, 3> one = linear.forward(attn::slice(x.view(), 1, r, r + 1));
    for (attn::Index c = 0; c < 96; ++c) row_by_row.view()(0, r, c) = one.view()(0, 0, c);
  }
  const float bf16_error = max_difference(all_rows.view(), row_by_row.view());
  std::printf("bfloat16 weights, packed vs float product: max difference %.2e\n",
              static_cast<double>(bf16_error));
  ok = ok && bf16_error <= 1e-4f;  // sums of 256 terms of size ~0.06: rounding ~1e-6

  std::printf("%s\n", ok ? "mixed flags: OK" : "mixed flags: FAILED");
  return ok ? 0 : 1;
}
