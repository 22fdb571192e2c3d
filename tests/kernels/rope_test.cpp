// Rotary position embeddings (kernels/rope.hpp) against PyTorch: rope.io.safetensors, written by
// tests/fixtures/generate_rope.py from a re-statement of the book's ch05/07 compute_rope_params
// and apply_rope (halves rotated, token t at position `position + t`).
//
// Tolerances, normwise (support/normwise.hpp) against a scale that comes from the problem:
// sqrt(numel) for a table (cos^2 + sin^2 = 1 entry by entry), ||x||_F for an output (a rotation
// keeps the norm), ||R||_F for a gradient. Float 1e-6, double 1e-12. A table entry is one libm
// call on an angle rounded the same way in both (every step in the table's own type, PyTorch's
// order), and PyTorch's vectorised cos and sin (Sleef, <= 1 ulp) and glibc's agree to about an
// ulp: the tables differ from PyTorch's by ~2e-8 (float) and ~4e-17 (double) normwise, an output
// element is two products and a sum, so a few eps. The bounds leave room for other libms and
// flags (FMA contraction), while a wrong sign, a swapped half or a position off by one moves the
// result by O(1) of the scale.
#include "attn/kernels/rope.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"
#include "support/rounding.hpp"

namespace {

constexpr attn::Index rope_context_length = 12;  // the fixture's tables
constexpr attn::Index rope_head_dims[] = {8, 16};
constexpr int rope_theta_bases[] = {10000, 500000};
constexpr attn::Index rope_positions[] = {0, 7};

template <typename Scalar>
std::string rope_dtype() {
  return std::is_same_v<Scalar, float> ? "f32" : "f64";
}

template <typename Scalar>
double rope_tolerance() {
  return std::is_same_v<Scalar, float> ? 1e-6 : 1e-12;
}

std::string rope_table_key(attn::Index head_dim, int theta_base) {
  return "d" + std::to_string(head_dim) + ".theta" + std::to_string(theta_base);
}

template <typename Scalar>
std::string rope_case_key(attn::Index head_dim, int theta_base, attn::Index position) {
  return rope_table_key(head_dim, theta_base) + ".pos" + std::to_string(position) + "." +
         rope_dtype<Scalar>();
}

const attn::io::SafetensorsFile& rope_fixture() {
  static const attn::io::SafetensorsFile file = attn_test::load_io("rope");
  return file;
}

/// x.d{D} or R.d{D} of the fixture, (2, 3, 5, D): stored as F32, exact in double too.
template <typename Scalar>
attn::Tensor<Scalar, 4> rope_input(const std::string& name, attn::Index head_dim) {
  return attn_test::fixture_tensor<Scalar, 4>(rope_fixture(),
                                              name + ".d" + std::to_string(head_dim));
}

template <typename Scalar>
attn::Tensor<Scalar, 4> rope_expected(const std::string& what, attn::Index head_dim, int theta_base,
                                      attn::Index position) {
  return attn_test::fixture_tensor<Scalar, 4>(
      rope_fixture(), what + "." + rope_case_key<Scalar>(head_dim, theta_base, position));
}

template <typename Scalar>
void rope_check_tables() {
  SCOPED_TRACE(rope_dtype<Scalar>());
  for (const attn::Index head_dim : rope_head_dims) {
    for (const int theta_base : rope_theta_bases) {
      SCOPED_TRACE(rope_table_key(head_dim, theta_base));
      const auto params = attn::compute_rope_params<Scalar>(
          head_dim, static_cast<Scalar>(theta_base), rope_context_length);
      EXPECT_EQ(params.head_dim(), head_dim);
      EXPECT_EQ(params.context_length(), rope_context_length);
      const std::string key = rope_table_key(head_dim, theta_base) + "." + rope_dtype<Scalar>();
      const double scale = std::sqrt(static_cast<double>(params.cos.numel()));
      EXPECT_TRUE(attn_test::close_normwise(
          params.cos, attn_test::fixture_tensor<Scalar, 2>(rope_fixture(), "cos." + key), scale,
          rope_tolerance<Scalar>(), "cos"));
      EXPECT_TRUE(attn_test::close_normwise(
          params.sin, attn_test::fixture_tensor<Scalar, 2>(rope_fixture(), "sin." + key), scale,
          rope_tolerance<Scalar>(), "sin"));
    }
  }
}

TEST(Rope, TablesMatchPyTorch) {
  rope_check_tables<float>();
  rope_check_tables<double>();
}

// Forward and backward at positions 0 and 7, on our own tables (so the whole chain is checked).
template <typename Scalar>
void rope_check_forward_and_backward() {
  SCOPED_TRACE(rope_dtype<Scalar>());
  for (const attn::Index head_dim : rope_head_dims) {
    const auto x = rope_input<Scalar>("x", head_dim);
    const auto weights = rope_input<Scalar>("R", head_dim);
    for (const int theta_base : rope_theta_bases) {
      const auto params = attn::compute_rope_params<Scalar>(
          head_dim, static_cast<Scalar>(theta_base), rope_context_length);
      for (const attn::Index position : rope_positions) {
        SCOPED_TRACE(rope_case_key<Scalar>(head_dim, theta_base, position));
        attn::Tensor<Scalar, 4> out = x;
        attn::apply_rope(out.view(), params, position);
        EXPECT_TRUE(attn_test::close_normwise(
            out, rope_expected<Scalar>("out", head_dim, theta_base, position),
            attn_test::frobenius(x), rope_tolerance<Scalar>(), "out"));
        attn::Tensor<Scalar, 4> grad = weights;
        attn::apply_rope_backward(grad.view(), params.cos, params.sin, position);
        EXPECT_TRUE(attn_test::close_normwise(
            grad, rope_expected<Scalar>("grad", head_dim, theta_base, position),
            attn_test::frobenius(weights), rope_tolerance<Scalar>(), "grad"));
      }
    }
  }
}

TEST(Rope, ForwardAndBackwardMatchPyTorch) {
  rope_check_forward_and_backward<float>();
  rope_check_forward_and_backward<double>();
}

// PyTorch's own tables in, PyTorch's output out: the kernel alone, with the tables as views of
// rows [position, context_length) (any row offset) and position 0.
TEST(Rope, KernelOnPyTorchsTablesAndSlicedTables) {
  const attn::Index head_dim = 16, position = 7;
  const int theta_base = 500000;
  const std::string key = rope_table_key(head_dim, theta_base) + ".f64";
  const auto cos = attn_test::fixture_tensor<double, 2>(rope_fixture(), "cos." + key);
  const auto sin = attn_test::fixture_tensor<double, 2>(rope_fixture(), "sin." + key);
  const auto x = rope_input<double>("x", head_dim);
  const auto expected = rope_expected<double>("out", head_dim, theta_base, position);

  attn::Tensor<double, 4> out = x;
  attn::apply_rope(out.view(), cos.view(), sin.view(), position);
  EXPECT_TRUE(attn_test::close_normwise(out, expected, attn_test::frobenius(x), 1e-12, "out"));

  attn::Tensor<double, 4> from_slice = x;
  attn::apply_rope(from_slice.view(), attn::slice(cos.view(), 0, position, rope_context_length),
                   attn::slice(sin.view(), 0, position, rope_context_length));
  EXPECT_TRUE(
      attn_test::close_normwise(from_slice, expected, attn_test::frobenius(x), 1e-12, "sliced"));
}

// Heads split from a (B, T, H*D) projection are strided views (row stride H*D, head stride D):
// rotated in place, they equal the contiguous result and PyTorch's.
TEST(Rope, StridedHeadViewEqualsContiguous) {
  const attn::Index head_dim = 8, position = 7;
  const int theta_base = 10000;
  const auto x = rope_input<float>("x", head_dim);  // (B, H, T, D)
  const attn::Index B = x.size(0), H = x.size(1), T = x.size(2);
  attn::Tensor<float, 3> projection({B, T, H * head_dim});
  const auto heads = attn::split_heads(projection.view(), H);  // (B, H, T, D) view of it
  for (attn::Index b = 0; b < B; ++b) {
    for (attn::Index h = 0; h < H; ++h) {
      for (attn::Index t = 0; t < T; ++t) {
        for (attn::Index d = 0; d < head_dim; ++d) heads(b, h, t, d) = x(b, h, t, d);
      }
    }
  }
  ASSERT_FALSE(heads.is_contiguous());
  const auto params = attn::compute_rope_params<float>(head_dim, static_cast<float>(theta_base),
                                                       rope_context_length);
  attn::apply_rope(heads, params, position);
  attn::Tensor<float, 4> contiguous = x;
  attn::apply_rope(contiguous.view(), params, position);
  for (attn::Index b = 0; b < B; ++b) {
    for (attn::Index h = 0; h < H; ++h) {
      for (attn::Index t = 0; t < T; ++t) {
        for (attn::Index d = 0; d < head_dim; ++d) {
          EXPECT_EQ(heads(b, h, t, d), contiguous(b, h, t, d)) << b << h << t << d;
        }
      }
    }
  }
  EXPECT_TRUE(attn_test::close_normwise(attn::Tensor<float, 4>(heads),
                                        rope_expected<float>("out", head_dim, theta_base, position),
                                        attn_test::frobenius(x), 1e-6, "strided heads"));

  // The backward on the same strided view.
  attn::apply_rope_backward(heads, params, position);
  attn::apply_rope_backward(contiguous.view(), params, position);
  EXPECT_TRUE(attn_test::close_normwise(attn::Tensor<float, 4>(heads), contiguous,
                                        attn_test::frobenius(x), 0.0, "strided backward"));
}

// Rank 2 (T, D) and rank 3 (H, T, D) views take the same path: each (b, h) block of the
// fixture's x, and the (H, T, D) block of batch 1, against PyTorch's output.
TEST(Rope, RanksTwoAndThreeMatchPyTorch) {
  const attn::Index head_dim = 16, position = 7;
  const int theta_base = 10000;
  const auto x = rope_input<float>("x", head_dim);
  const auto expected = rope_expected<float>("out", head_dim, theta_base, position);
  const auto params = attn::compute_rope_params<float>(head_dim, static_cast<float>(theta_base),
                                                       rope_context_length);
  attn::Tensor<float, 4> by_matrix = x, by_batch = x;
  for (attn::Index b = 0; b < x.size(0); ++b) {
    for (attn::Index h = 0; h < x.size(1); ++h) {
      attn::apply_rope(attn::select(attn::select(by_matrix.view(), 0, b), 0, h), params, position);
    }
    attn::apply_rope(attn::select(by_batch.view(), 0, b), params.cos, params.sin, position);
  }
  EXPECT_TRUE(
      attn_test::close_normwise(by_matrix, expected, attn_test::frobenius(x), 1e-6, "rank 2"));
  EXPECT_TRUE(
      attn_test::close_normwise(by_batch, expected, attn_test::frobenius(x), 1e-6, "rank 3"));
}

// The rotation is orthogonal: the backward with the same angles undoes the forward, to rounding
// (each element passes through two rotations and cos^2 + sin^2 = 1 holds to an eps or two).
template <typename Scalar>
void rope_check_backward_undoes_forward() {
  SCOPED_TRACE(rope_dtype<Scalar>());
  const attn::Index head_dim = 16, position = 7;
  const int theta_base = 500000;
  const auto x = rope_input<Scalar>("x", head_dim);
  const auto params = attn::compute_rope_params<Scalar>(head_dim, static_cast<Scalar>(theta_base),
                                                        rope_context_length);
  attn::Tensor<Scalar, 4> values = x;
  attn::apply_rope(values.view(), params, position);
  EXPECT_TRUE(attn_test::close_normwise(
      values, rope_expected<Scalar>("out", head_dim, theta_base, position), attn_test::frobenius(x),
      rope_tolerance<Scalar>(), "out"));
  attn::apply_rope_backward(values.view(), params, position);
  EXPECT_TRUE(attn_test::close_normwise(values, x, attn_test::frobenius(x),
                                        attn_test::rounding_tolerance<Scalar>(0, 4),
                                        "backward(forward(x))"));
}

TEST(Rope, BackwardUndoesForward) {
  rope_check_backward_undoes_forward<float>();
  rope_check_backward_undoes_forward<double>();
}

// The defaults (theta_base 10000, context_length 4096) and structured bindings; the first rows
// are the fixture's (theta 10000, head_dim 8) table.
TEST(Rope, DefaultsAndStructuredBindings) {
  auto [cos, sin] = attn::compute_rope_params<float>(8);
  EXPECT_EQ(cos.shape(), (attn::Shape<2>{4096, 8}));
  EXPECT_EQ(sin.shape(), (attn::Shape<2>{4096, 8}));
  const auto first_rows = [](const attn::Tensor<float, 2>& table) {
    return attn::Tensor<float, 2>(attn::slice(table.view(), 0, 0, rope_context_length));
  };
  const double scale = std::sqrt(static_cast<double>(rope_context_length * 8));
  EXPECT_TRUE(attn_test::close_normwise(
      first_rows(cos), attn_test::fixture_tensor<float, 2>(rope_fixture(), "cos.d8.theta10000.f32"),
      scale, 1e-6, "cos"));
  EXPECT_TRUE(attn_test::close_normwise(
      first_rows(sin), attn_test::fixture_tensor<float, 2>(rope_fixture(), "sin.d8.theta10000.f32"),
      scale, 1e-6, "sin"));
  const auto params = attn::compute_rope_params<double>(64);
  EXPECT_EQ(params.head_dim(), 64);
  EXPECT_EQ(params.context_length(), 4096);
}

TEST(Rope, BadParametersAreRefused) {
  ATTN_EXPECT_ERROR(attn::compute_rope_params<float>(7), attn::ShapeError,
                    {"compute_rope_params", "head_dim (7)", "even"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<float>(0), attn::ShapeError,
                    {"compute_rope_params", "head_dim (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<double>(-4), std::invalid_argument,
                    {"compute_rope_params", "head_dim (-4)"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<float>(8, 10000.0f, 0), attn::ShapeError,
                    {"compute_rope_params", "context_length (0)", "positive"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<double>(8, 10000.0, -3), std::invalid_argument,
                    {"compute_rope_params", "context_length (-3)"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<float>(8, 0.0f), std::invalid_argument,
                    {"compute_rope_params", "theta_base (0)", "positive and finite"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<double>(8, -10.0), std::invalid_argument,
                    {"compute_rope_params", "theta_base (-10)"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<float>(8, std::numeric_limits<float>::infinity()),
                    std::invalid_argument, {"compute_rope_params", "theta_base (inf)"});
  ATTN_EXPECT_ERROR(attn::compute_rope_params<double>(8, std::nan("")), std::invalid_argument,
                    {"compute_rope_params", "theta_base (nan)"});
}

TEST(Rope, BadOperandsAreRefused) {
  const auto params = attn::compute_rope_params<float>(8, 10000.0f, rope_context_length);
  attn::Tensor<float, 4> x({2, 3, 5, 8});
  // x's head_dim against the tables' columns.
  attn::Tensor<float, 4> wide({2, 3, 5, 16});
  ATTN_EXPECT_ERROR(
      attn::apply_rope(wide.view(), params), attn::ShapeError,
      {"apply_rope", "x has shape (2, 3, 5, 16)", "head_dim 16", "columns of cos (8"});
  ATTN_EXPECT_ERROR(attn::apply_rope_backward(wide.view(), params), attn::ShapeError,
                    {"apply_rope_backward", "grad has shape (2, 3, 5, 16)", "head_dim 16"});
  // cos and sin of different shapes.
  const auto other = attn::compute_rope_params<float>(8, 10000.0f, 11);
  ATTN_EXPECT_ERROR(attn::apply_rope(x.view(), params.cos, other.sin), attn::ShapeError,
                    {"apply_rope", "cos has shape (12, 8)", "sin has shape (11, 8)"});
  // Odd head_dim in tables made elsewhere.
  attn::Tensor<float, 2> odd_cos({12, 7}), odd_sin({12, 7});
  attn::Tensor<float, 3> odd_x({3, 5, 7});
  ATTN_EXPECT_ERROR(attn::apply_rope(odd_x.view(), odd_cos.view(), odd_sin.view()),
                    attn::ShapeError,
                    {"apply_rope", "x has shape (3, 5, 7)", "head_dim (7)", "even"});
  // Positions outside the tables.
  ATTN_EXPECT_ERROR(attn::apply_rope(x.view(), params, -1), std::out_of_range,
                    {"apply_rope", "position (-1)", "negative"});
  ATTN_EXPECT_ERROR(attn::apply_rope(x.view(), params, 8), std::out_of_range,
                    {"apply_rope", "position (8) + tokens (5)", "= 13", "context_length (12)"});
  ATTN_EXPECT_ERROR(attn::apply_rope_backward(x.view(), params, 8), std::out_of_range,
                    {"apply_rope_backward", "position (8)", "context_length (12)"});
  attn::apply_rope(x.view(), params, 7);  // the last position that fits: no throw
  // Views the kernel cannot rotate in place.
  attn::Tensor<float, 3> square({2, 8, 8});
  ATTN_EXPECT_ERROR(attn::apply_rope(attn::transpose(square.view(), 1, 2), params),
                    attn::ShapeError,
                    {"apply_rope", "x has shape (2, 8, 8)", "strides (64, 1, 8)", "unit-stride"});
  const attn::Tensor<float, 2> big({12, 16});
  const auto strided_cos = attn::TensorView<const float, 2>(big.data(), {12, 8}, {16, 2});
  ATTN_EXPECT_ERROR(attn::apply_rope(x.view(), strided_cos, strided_cos), attn::ShapeError,
                    {"apply_rope", "cos has shape (12, 8)", "strides (16, 2)", "unit-stride"});
}

}  // namespace
