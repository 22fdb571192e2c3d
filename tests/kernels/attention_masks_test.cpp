// The masks of real batches and of inference, on both kernel paths, forward and backward:
// key padding (lengths or a (B, S) bool matrix), additive float masks broadcast over batch and
// heads, PyTorch's boolean attn_mask through the documented converter, sliding windows, and
// grouped-query heads. Fixtures: tests/fixtures/generate_inference.py (mask_*), computed in
// float64 by PyTorch with fully masked rows set to zeros (attn's rule; PyTorch gives NaN).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "attn/kernels/mask.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/random/generator.hpp"
#include "support/attention_bounds.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn_test::close_normwise;
using attn_test::fixture_tensor;

constexpr attn::AttentionPath masks_paths[] = {attn::AttentionPath::reference,
                                               attn::AttentionPath::fused};

/// What a mask_* case asks of the kernel, and the storage its views point into.
template <typename Scalar>
struct MasksCase {
  attn::AttentionOptions<Scalar> options;
  attn::Tensor<Index, 1> lengths;
  attn::Tensor<bool, 2> padding, matrix;
  attn::Tensor<Scalar, 4> additive;
  double largest_addition = 0;  // max |finite additive entry|: it enlarges the logits
};

template <typename Scalar>
void masks_read_case(const attn::io::SafetensorsFile& file, MasksCase<Scalar>& c) {
  const bool causal = file.metadata.at("causal") == "True" || file.metadata.at("causal") == "1" ||
                      file.metadata.at("causal") == "true";
  c.options.scale = Scalar(std::stod(file.metadata.at("scale")));
  attn::Mask mask = causal ? attn::Mask::causal(attn_test::metadata_int(file, "causal_offset"))
                           : attn::Mask::none();
  if (file.tensors.count("lengths") != 0) {
    const auto values = fixture_tensor<double, 1>(file, "lengths");
    c.lengths = attn::Tensor<Index, 1>(values.shape());
    for (Index b = 0; b < values.numel(); ++b) c.lengths(b) = static_cast<Index>(values(b));
    mask = mask.with_key_lengths(c.lengths.view());
  }
  if (file.tensors.count("key_padding") != 0) {
    const auto values = fixture_tensor<double, 2>(file, "key_padding");
    c.padding = attn::Tensor<bool, 2>(values.shape());
    for (Index i = 0; i < values.numel(); ++i) c.padding.data()[i] = values.data()[i] != 0;
    mask = mask.with_key_padding(c.padding.view());
  }
  if (file.tensors.count("attn_mask") != 0) {
    // PyTorch's convention, true = attend: through the converters, never a silent flip.
    const auto values = fixture_tensor<double, 4>(file, "attn_mask_4d");
    attn::Tensor<bool, 4> attend(values.shape());
    for (Index i = 0; i < values.numel(); ++i) attend.data()[i] = values.data()[i] != 0;
    if (attend.size(0) == 1 && attend.size(1) == 1) {
      const attn::Tensor<bool, 2> plane(
          attn::TensorView<const bool, 2>(attend.data(), {attend.size(2), attend.size(3)}));
      c.matrix = attn::masked_from_pytorch_attn_mask<2>(plane.view());
      mask = attn::Mask::matrix(c.matrix.view());
    } else {
      c.additive = attn::additive_from_pytorch_attn_mask<Scalar, 4>(attend.view());
      c.options.additive_mask = c.additive.view();
    }
  }
  if (file.tensors.count("additive") != 0) {
    c.additive = fixture_tensor<Scalar, 4>(file, "additive");
    c.options.additive_mask = c.additive.view();
    for (Index i = 0; i < c.additive.numel(); ++i) {
      const double value = c.additive.data()[i];
      if (std::isfinite(value)) c.largest_addition = std::max(c.largest_addition, std::abs(value));
    }
  }
  c.options.mask = mask;
}

/// A PyTorch bool attn_mask of any rank as 4-D (leading unit dims added), for the converters.
attn::io::SafetensorsFile masks_with_4d_attn_mask(attn::io::SafetensorsFile file) {
  if (file.tensors.count("attn_mask") == 0) return file;
  auto entry = file.tensors.at("attn_mask");
  while (entry.shape.size() < 4) entry.shape.insert(entry.shape.begin(), 1);
  file.tensors["attn_mask_4d"] = entry;
  return file;
}

template <typename Scalar>
void masks_check_case(const std::string& name, attn::AttentionPath path) {
  SCOPED_TRACE(name + (path == attn::AttentionPath::fused ? " fused" : " reference"));
  const auto file = masks_with_4d_attn_mask(attn_test::load_io(name));
  MasksCase<Scalar> c;
  masks_read_case(file, c);
  c.options.path = path;
  const auto q = fixture_tensor<Scalar, 4>(file, "q");
  const auto k = fixture_tensor<Scalar, 4>(file, "k");
  const auto v = fixture_tensor<Scalar, 4>(file, "v");
  const auto R = fixture_tensor<Scalar, 4>(file, "R");
  attn::Tensor<Scalar, 4> out(q.shape(), Scalar(-7));
  attn::AttentionCache<Scalar> cache;
  attn::scaled_dot_product_attention<Scalar, 4>(q.view(), k.view(), v.view(), out.view(), c.options,
                                                {}, &cache);
  attn::Tensor<Scalar, 4> dq(q.shape()), dk(k.shape()), dv(v.shape());
  attn::scaled_dot_product_attention_backward<Scalar, 4>(q.view(), k.view(), v.view(), out.view(),
                                                         R.view(), dq.view(), dk.view(), dv.view(),
                                                         c.options.mask, cache);
  // Normwise against the problem's scales (attention_bounds.hpp); the additive mask's finite
  // entries add to every logit's size, hence to the tolerance's.
  auto bounds = attn_test::attention_bounds(q, k, v, R, static_cast<double>(*c.options.scale));
  bounds.logits += c.largest_addition;
  const double tolerance = attn_test::rounding_tolerance<Scalar>(bounds.logits, bounds.length, 8);
  EXPECT_TRUE(
      close_normwise(out, fixture_tensor<Scalar, 4>(file, "out"), bounds.out, tolerance, "out"));
  EXPECT_TRUE(close_normwise(dq, fixture_tensor<Scalar, 4>(file, "grad.q"), bounds.grad_q,
                             tolerance, "grad q"));
  EXPECT_TRUE(close_normwise(dk, fixture_tensor<Scalar, 4>(file, "grad.k"), bounds.grad_k,
                             tolerance, "grad k"));
  EXPECT_TRUE(close_normwise(dv, fixture_tensor<Scalar, 4>(file, "grad.v"), bounds.grad_v,
                             tolerance, "grad v"));
  // Fully masked rows are exactly zero, on both paths.
  const auto expected = fixture_tensor<Scalar, 4>(file, "out");
  for (Index i = 0; i < out.numel(); i += q.size(3)) {
    bool zero_row = true;
    for (Index d = 0; d < q.size(3); ++d) zero_row = zero_row && expected.data()[i + d] == 0;
    if (!zero_row) continue;
    for (Index d = 0; d < q.size(3); ++d) EXPECT_EQ(out.data()[i + d], Scalar(0)) << "row " << i;
  }
}

const char* const masks_cases[] = {"mask_lengths",
                                   "mask_lengths_causal",
                                   "mask_lengths_zero",
                                   "mask_lengths_zero_causal",
                                   "mask_key_padding",
                                   "mask_key_padding_causal",
                                   "mask_additive_1x1",
                                   "mask_additive_2x1",
                                   "mask_additive_1x3",
                                   "mask_additive_2x3",
                                   "mask_additive_1x1_causal",
                                   "mask_additive_2x1_causal",
                                   "mask_additive_1x3_causal",
                                   "mask_additive_2x3_causal",
                                   "mask_torch_bool",
                                   "mask_torch_bool_2x1"};

TEST(AttentionMasks, MatchPyTorchInDouble) {
  for (const char* name : masks_cases) {
    for (const auto path : masks_paths) masks_check_case<double>(name, path);
  }
}

TEST(AttentionMasks, MatchPyTorchInFloat) {
  for (const char* name : masks_cases) {
    for (const auto path : masks_paths) masks_check_case<float>(name, path);
  }
}

// ---- Sliding windows and grouped-query heads against the reference path and the definition ----

template <typename Scalar>
attn::Tensor<Scalar, 4> masks_random(attn::Generator& generator, attn::Shape<4> shape) {
  attn::Tensor<Scalar, 4> t(shape);
  for (Index i = 0; i < t.numel(); ++i) t.data()[i] = generator.uniform<Scalar>(-1, 1);
  return t;
}

/// k or v with each kv head repeated for its group of query heads: PyTorch's repeat_interleave.
template <typename Scalar>
attn::Tensor<Scalar, 4> masks_repeat_heads(const attn::Tensor<Scalar, 4>& kv, Index heads) {
  attn::Tensor<Scalar, 4> repeated({kv.size(0), heads, kv.size(2), kv.size(3)});
  const Index group = heads / kv.size(1);
  for (Index b = 0; b < kv.size(0); ++b) {
    for (Index h = 0; h < heads; ++h) {
      for (Index s = 0; s < kv.size(2); ++s) {
        for (Index d = 0; d < kv.size(3); ++d) repeated(b, h, s, d) = kv(b, h / group, s, d);
      }
    }
  }
  return repeated;
}

/// The gradient of repeated k or v summed back over each group: what the kernel gives the kv
/// heads themselves.
template <typename Scalar>
attn::Tensor<Scalar, 4> masks_sum_groups(const attn::Tensor<Scalar, 4>& grad, Index kv_heads) {
  attn::Tensor<Scalar, 4> summed({grad.size(0), kv_heads, grad.size(2), grad.size(3)});
  const Index group = grad.size(1) / kv_heads;
  for (Index b = 0; b < grad.size(0); ++b) {
    for (Index h = 0; h < grad.size(1); ++h) {
      for (Index s = 0; s < grad.size(2); ++s) {
        for (Index d = 0; d < grad.size(3); ++d) summed(b, h / group, s, d) += grad(b, h, s, d);
      }
    }
  }
  return summed;
}

struct MasksGradients {
  attn::Tensor<double, 4> out, dq, dk, dv;
};

MasksGradients masks_run(const attn::Tensor<double, 4>& q, const attn::Tensor<double, 4>& k,
                         const attn::Tensor<double, 4>& v, const attn::Tensor<double, 4>& R,
                         attn::AttentionOptions<double> options, attn::AttentionPath path) {
  options.path = path;
  MasksGradients g{attn::Tensor<double, 4>(q.shape()), attn::Tensor<double, 4>(q.shape()),
                   attn::Tensor<double, 4>(k.shape()), attn::Tensor<double, 4>(v.shape())};
  attn::AttentionCache<double> cache;
  attn::scaled_dot_product_attention<double, 4>(q.view(), k.view(), v.view(), g.out.view(), options,
                                                {}, &cache);
  attn::scaled_dot_product_attention_backward<double, 4>(q.view(), k.view(), v.view(), g.out.view(),
                                                         R.view(), g.dq.view(), g.dk.view(),
                                                         g.dv.view(), options.mask, cache);
  return g;
}

// The window's band as an explicit matrix is the definition (query i sees j with
// 0 <= i + offset - j < W); the band mask must give the same result on both paths, with T and S
// over several 128 x 512 tiles so that the fused kernel's tile skipping is exercised.
TEST(AttentionMasks, SlidingWindowEqualsItsBandMatrix) {
  attn::Generator generator(7);
  const Index T = 600, S = 700, D = 8;
  const auto q = masks_random<double>(generator, {1, 2, T, D});
  const auto k = masks_random<double>(generator, {1, 2, S, D});
  const auto v = masks_random<double>(generator, {1, 2, S, D});
  const auto R = masks_random<double>(generator, {1, 2, T, D});
  for (const auto& [window, offset] :
       {std::pair<Index, Index>{1, 0}, {37, 0}, {600, 400}, {T, 0}}) {
    SCOPED_TRACE("window " + std::to_string(window) + " offset " + std::to_string(offset));
    attn::Tensor<bool, 2> band({T, S});
    for (Index i = 0; i < T; ++i) {
      for (Index j = 0; j < S; ++j) band(i, j) = !(j <= i + offset && i + offset - j < window);
    }
    attn::AttentionOptions<double> by_matrix, by_window;
    by_matrix.mask = attn::Mask::matrix(band.view());
    by_window.mask = attn::Mask::sliding_window(window, offset);
    const auto expected = masks_run(q, k, v, R, by_matrix, attn::AttentionPath::reference);
    const auto bounds = attn_test::attention_bounds(q, k, v, R, 1 / std::sqrt(double(D)));
    const double tolerance = attn_test::rounding_tolerance<double>(bounds.logits, bounds.length, 8);
    for (const auto path : masks_paths) {
      const auto got = masks_run(q, k, v, R, by_window, path);
      EXPECT_TRUE(close_normwise(got.out, expected.out, bounds.out, tolerance, "out"));
      EXPECT_TRUE(close_normwise(got.dq, expected.dq, bounds.grad_q, tolerance, "dq"));
      EXPECT_TRUE(close_normwise(got.dk, expected.dk, bounds.grad_k, tolerance, "dk"));
      EXPECT_TRUE(close_normwise(got.dv, expected.dv, bounds.grad_v, tolerance, "dv"));
    }
  }
}

// Grouped-query heads read their kv head in place: the same as repeating k and v (PyTorch's
// repeat_interleave) with the gradients summed back, on both paths and with padding and a
// window, across several tiles.
TEST(AttentionMasks, GroupedHeadsEqualRepeatedKeysAndValues) {
  attn::Generator generator(9);
  const Index B = 2, H = 6, T = 200, S = 600, D = 4;
  attn::Tensor<Index, 1> lengths({B});
  lengths(0) = S;
  lengths(1) = 333;
  for (const Index kv_heads : {1, 3, 6}) {
    SCOPED_TRACE("kv heads " + std::to_string(kv_heads));
    const auto q = masks_random<double>(generator, {B, H, T, D});
    const auto k = masks_random<double>(generator, {B, kv_heads, S, D});
    const auto v = masks_random<double>(generator, {B, kv_heads, S, D});
    const auto R = masks_random<double>(generator, {B, H, T, D});
    const auto k_repeated = masks_repeat_heads(k, H), v_repeated = masks_repeat_heads(v, H);
    attn::AttentionOptions<double> options;
    options.mask = attn::Mask::sliding_window(200, S - T).with_key_lengths(lengths.view());
    const auto bounds = attn_test::attention_bounds(q, k_repeated, v_repeated, R, 0.5);
    const double tolerance = attn_test::rounding_tolerance<double>(bounds.logits, bounds.length, 8);
    for (const auto path : masks_paths) {
      const auto expected = masks_run(q, k_repeated, v_repeated, R, options, path);
      const auto got = masks_run(q, k, v, R, options, path);
      EXPECT_TRUE(close_normwise(got.out, expected.out, bounds.out, tolerance, "out"));
      EXPECT_TRUE(close_normwise(got.dq, expected.dq, bounds.grad_q, tolerance, "dq"));
      EXPECT_TRUE(close_normwise(got.dk, masks_sum_groups(expected.dk, kv_heads), bounds.grad_k,
                                 tolerance, "dk"));
      EXPECT_TRUE(close_normwise(got.dv, masks_sum_groups(expected.dv, kv_heads), bounds.grad_v,
                                 tolerance, "dv"));
    }
  }
}

TEST(AttentionMasks, MaskSemanticsAreTheDefinitions) {
  attn::Tensor<Index, 1> lengths({2});
  lengths(0) = 4;
  lengths(1) = 0;
  attn::Tensor<bool, 2> padding({2, 6});
  padding(0, 1) = true;
  padding(1, 5) = true;
  const auto band = attn::Mask::sliding_window(3, 1);
  const auto short_keys = band.with_key_lengths(lengths.view());
  const auto padded = attn::Mask::causal().with_key_padding(padding.view());
  for (Index b = 0; b < 2; ++b) {
    for (Index i = 0; i < 5; ++i) {
      for (Index j = 0; j < 6; ++j) {
        const bool in_band = j <= i + 1 && i + 1 - j < 3;
        EXPECT_EQ(band.masked(i, j), !in_band);
        EXPECT_EQ(short_keys.masked(i, j, b), !in_band || j >= lengths(b));
        EXPECT_EQ(padded.masked(i, j, b), j > i || padding(b, j));
      }
    }
  }
  EXPECT_EQ(attn::Mask::sliding_window(3).window(), 3);
  EXPECT_EQ(padded.padding_batches(), 2);
  // PyTorch's boolean attn_mask (true = attend) converted, not flipped silently.
  attn::Tensor<bool, 2> attend({1, 2});
  attend(0, 0) = true;
  const auto masked = attn::masked_from_pytorch_attn_mask<2>(attend.view());
  EXPECT_FALSE(masked(0, 0));
  EXPECT_TRUE(masked(0, 1));
  const auto additive = attn::additive_from_pytorch_attn_mask<float, 2>(attend.view());
  EXPECT_EQ(additive(0, 0), 0.0f);
  EXPECT_EQ(additive(0, 1), -std::numeric_limits<float>::infinity());
}

void masks_call(const attn::Tensor<float, 4>& q, const attn::Tensor<float, 4>& k,
                const attn::Tensor<float, 4>& v, attn::Tensor<float, 4>& out,
                const attn::AttentionOptions<float>& options = {}) {
  attn::scaled_dot_product_attention<float, 4>(q.view(), k.view(), v.view(), out.view(), options);
}

TEST(AttentionMasks, BadInputIsRefusedWithItsValues) {
  ATTN_EXPECT_ERROR(attn::Mask::sliding_window(0), std::invalid_argument, {"window", "(0)"});
  attn::Tensor<float, 4> q({2, 4, 3, 2}), k({2, 3, 5, 2}), v({2, 3, 5, 2}), out({2, 4, 3, 2});
  // 4 query heads cannot share 3 kv heads.
  ATTN_EXPECT_ERROR(masks_call(q, k, v, out), attn::ShapeError,
                    {"k", "(2, 3, 5, 2)", "4 query heads", "3 kv heads"});
  attn::Tensor<float, 4> k2({2, 2, 5, 2}), v2({2, 2, 5, 2});
  attn::AttentionOptions<float> options;
  attn::Tensor<Index, 1> lengths({2});
  options.mask = attn::Mask::causal().with_key_lengths(lengths.view());
  lengths(0) = -1;
  ATTN_EXPECT_ERROR(masks_call(q, k2, v2, out, options), std::out_of_range,
                    {"key length -1", "sequence 0", "is negative"});
  // A length beyond S (a decoder's sequence length while the keys grow) masks none of them:
  // the same as S. (Ramp inputs so that the outputs are not all zero.)
  for (Index i = 0; i < q.numel(); ++i) q.data()[i] = 0.1f * static_cast<float>(i % 7);
  for (Index i = 0; i < k2.numel(); ++i) k2.data()[i] = 0.2f * static_cast<float>(i % 5);
  for (Index i = 0; i < v2.numel(); ++i) v2.data()[i] = 0.3f * static_cast<float>(i % 3) - 0.2f;
  lengths(0) = 6;
  lengths(1) = 3;
  masks_call(q, k2, v2, out, options);
  const std::vector<float> beyond(out.data(), out.data() + out.numel());
  lengths(0) = 5;
  masks_call(q, k2, v2, out, options);
  EXPECT_EQ(beyond, std::vector<float>(out.data(), out.data() + out.numel()));
  attn::Tensor<Index, 1> three({3});
  options.mask = attn::Mask::none().with_key_lengths(three.view());
  ATTN_EXPECT_ERROR(masks_call(q, k2, v2, out, options), attn::ShapeError,
                    {"3 sequences", "batch of 2"});
  attn::Tensor<bool, 2> padding({2, 4});
  options.mask = attn::Mask::none().with_key_padding(padding.view());
  ATTN_EXPECT_ERROR(masks_call(q, k2, v2, out, options), attn::ShapeError,
                    {"key padding", "(2, 4)", "5 keys"});
  options.mask = attn::Mask::none();
  attn::Tensor<float, 4> additive({2, 3, 3, 5});  // 3 does not broadcast to 4 heads
  options.additive_mask = additive.view();
  ATTN_EXPECT_ERROR(masks_call(q, k2, v2, out, options), attn::ShapeError,
                    {"additive mask", "(2, 3, 3, 5)", "(T, S) = (3, 5)"});
  attn::Tensor<float, 4> nan_mask({1, 1, 3, 5});
  nan_mask(0, 0, 1, 2) = std::numeric_limits<float>::quiet_NaN();
  options.additive_mask = nan_mask.view();
  ATTN_EXPECT_ERROR(masks_call(q, k2, v2, out, options), std::invalid_argument,
                    {"additive mask", "NaN or +inf"});
}

}  // namespace
