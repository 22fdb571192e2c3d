// Loading forgives what it safely can (issue 12): every safetensors dtype is read, parameters
// convert from F64, F32, BF16 and F16, the book's mask buffer is checked in any dtype, data
// tensors (token ids) load exactly or are refused. References are files PyTorch wrote
// (tests/fixtures/generate_dtypes.py): conversions.safetensors holds each source value with
// PyTorch's conversion of it, mha_dtypes*.safetensors a layer's weights in each dtype with
// PyTorch's forward from them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/io/safetensors.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/layer_fixture.hpp"

namespace {

using attn::Index;
using attn::io::SafetensorsError;

const attn::io::SafetensorsFile& conversions() {
  static const attn::io::SafetensorsFile file = attn_test::read_fixture("conversions.safetensors");
  return file;
}

/// Passes when both hold the same values bit for bit (any NaN matches any NaN, as PyTorch's
/// upcasts keep NaN but need not keep its payload bits).
template <typename Scalar>
::testing::AssertionResult same_values(const attn::Tensor<Scalar, 1>& actual,
                                       const attn::Tensor<Scalar, 1>& expected) {
  if (actual.numel() != expected.numel()) {
    return ::testing::AssertionFailure() << actual.numel() << " vs " << expected.numel();
  }
  for (Index i = 0; i < actual.numel(); ++i) {
    const Scalar a = actual.data()[i], e = expected.data()[i];
    if (std::isnan(a) && std::isnan(e)) continue;
    using Bits = std::conditional_t<sizeof(Scalar) == 4, std::uint32_t, std::uint64_t>;
    Bits a_bits = 0, e_bits = 0;  // bit for bit: -0 is not 0
    std::memcpy(&a_bits, &a, sizeof a);
    std::memcpy(&e_bits, &e, sizeof e);
    if (a_bits != e_bits) {
      return ::testing::AssertionFailure()
             << "element " << i << ": " << a << " vs PyTorch's " << e << " (bits differ)";
    }
  }
  return ::testing::AssertionSuccess();
}

// ---- Element conversions against PyTorch ------------------------------------------------------

TEST(SafetensorsDtypes, HalfToFloatMatchesPyTorch) {
  // Zeros of both signs, subnormals (2^-24 and its multiples), the largest half, +-inf, NaN.
  EXPECT_EQ(conversions().tensors.at("f16").dtype, attn::io::Dtype::F16);
  EXPECT_TRUE(same_values(attn::io::to_tensor<float, 1>(conversions(), "f16"),
                          attn::io::to_tensor<float, 1>(conversions(), "f16.as_f32")));
  EXPECT_TRUE(std::signbit(attn::io::to_tensor<float, 1>(conversions(), "f16")(1)));  // -0
}

TEST(SafetensorsDtypes, HalfToFloatAgreesWithItsDefinitionForEveryBitPattern) {
  // Every one of the 65536 halves against IEEE 754's definition of binary16, evaluated with
  // arithmetic (ldexp) rather than bit moves: (-1)^s 2^(e-15) (1 + m/1024), or 2^-14 (m/1024)
  // when e = 0; e = 31 is inf (m = 0) or NaN.
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const int sign = (bits >> 15) != 0 ? -1 : 1;
    const int e = static_cast<int>((bits >> 10) & 0x1f), m = static_cast<int>(bits & 0x3ff);
    const float got = attn::io::detail::f16_to_float(static_cast<std::uint16_t>(bits));
    if (e == 31) {
      EXPECT_TRUE(m == 0 ? got == sign * std::numeric_limits<float>::infinity() : std::isnan(got))
          << bits;
      continue;
    }
    const double magnitude =
        e == 0 ? std::ldexp(m / 1024.0, -14) : std::ldexp(1.0 + m / 1024.0, e - 15);
    ASSERT_EQ(static_cast<double>(got), sign * magnitude) << "half bits " << bits;
    ASSERT_EQ(std::signbit(got), sign < 0) << "half bits " << bits;
  }
}

TEST(SafetensorsDtypes, BFloat16ToFloatMatchesPyTorch) {
  // Includes float subnormals (2^-133), values near float's largest, +-inf and NaN.
  EXPECT_TRUE(same_values(attn::io::to_tensor<float, 1>(conversions(), "bf16"),
                          attn::io::to_tensor<float, 1>(conversions(), "bf16.as_f32")));
  // Widening to double is exact too: the same values.
  const auto as_double = attn::io::to_tensor<double, 1>(conversions(), "bf16");
  const auto expected = attn::io::to_tensor<float, 1>(conversions(), "bf16.as_f32");
  for (Index i = 0; i < expected.numel(); ++i) {
    if (std::isnan(expected(i))) continue;
    EXPECT_EQ(as_double(i), static_cast<double>(expected(i))) << i;
  }
}

TEST(SafetensorsDtypes, DoubleToFloatRoundsToNearestLikePyTorch) {
  // 1 + 2^-24 and 1 + 3 * 2^-24 are ties (to even: 1 and 1 + 2^-22), 1 + 2^-24 + 2^-40 is not;
  // 1e-46 underflows to 0 and 1.5 * 2^-149 to 2^-148; FLT_MAX stays; +-inf and NaN pass.
  EXPECT_TRUE(same_values(attn::io::to_tensor<float, 1>(conversions(), "f64"),
                          attn::io::to_tensor<float, 1>(conversions(), "f64.as_f32")));
}

TEST(SafetensorsDtypes, FiniteDoubleBeyondFloatIsRefusedNotMadeInfinite) {
  attn::io::SafetensorsFile file;
  file.tensors["w"] = {attn::io::Dtype::F64, {2}, std::vector<unsigned char>(16)};
  const double values[2] = {0.5, -1e300};
  std::memcpy(file.tensors["w"].bytes.data(), values, sizeof values);
  ATTN_EXPECT_ERROR(
      (attn::io::to_tensor<float, 1>(file, "w", "big.safetensors")), SafetensorsError,
      {"big.safetensors", "tensor 'w' element 1 (F64 -1e+300)", "beyond float's range"});
  EXPECT_EQ((attn::io::to_tensor<double, 1>(file, "w")(1)), -1e300);
}

// ---- Integers and BOOL ------------------------------------------------------------------------

TEST(SafetensorsDtypes, TokenIdsLoadAsIndexOrExactFloatingPoint) {
  const std::string path = attn_test::fixture_path("conversions.safetensors");
  const auto ids = attn::io::load_tensor<Index, 2>(path, "ids");  // I64, as PyTorch saves ids
  EXPECT_EQ(ids.shape(), (attn::Shape<2>{2, 4}));
  const std::vector<Index> expected = {0, 3, 3, 6, 5, 1, 3, 50256};
  EXPECT_EQ(std::vector<Index>(ids.data(), ids.data() + ids.numel()), expected);
  // Small integers are exact in float and double: PyTorch's .double() of them.
  const auto as_f64 = attn::io::load_tensor<double, 2>(path, "ids.as_f64");
  const auto ids_double = attn::io::load_tensor<double, 2>(path, "ids");
  const auto ids_float = attn::io::load_tensor<float, 2>(path, "ids");
  for (Index i = 0; i < as_f64.numel(); ++i) {
    EXPECT_EQ(ids_double.data()[i], as_f64.data()[i]);
    EXPECT_EQ(static_cast<double>(ids_float.data()[i]), as_f64.data()[i]);
  }
  // Floating-point ids (how generate.py stores them) load as Index when they are integers.
  const auto from_f64 = attn::io::load_tensor<Index, 2>(path, "ids.as_f64");
  EXPECT_EQ(std::vector<Index>(from_f64.data(), from_f64.data() + from_f64.numel()), expected);
}

TEST(SafetensorsDtypes, IntegersThatWouldChangeAreRefused) {
  const std::string path = attn_test::fixture_path("conversions.safetensors");
  // big_ids = [2^24 + 1, 2^53 + 1, -2^63] as I64.
  ATTN_EXPECT_ERROR((attn::io::load_tensor<float, 1>(path, "big_ids")), SafetensorsError,
                    {"conversions.safetensors", "tensor 'big_ids' element 0 (I64 16777217)",
                     "not exactly representable as float", "double or attn::Index"});
  ATTN_EXPECT_ERROR((attn::io::load_tensor<double, 1>(path, "big_ids")), SafetensorsError,
                    {"element 1 (I64 9007199254740993)", "not exactly representable as double"});
  const auto big = attn::io::load_tensor<Index, 1>(path, "big_ids");
  EXPECT_EQ(big(0), (Index{1} << 24) + 1);
  EXPECT_EQ(big(1), (Index{1} << 53) + 1);
  EXPECT_EQ(big(2), std::numeric_limits<Index>::min());
  // A non-integer value into Index: f16 holds -2.5 at element 3 (0, -0 and 1 come first).
  ATTN_EXPECT_ERROR((attn::io::load_tensor<Index, 1>(path, "f16")), SafetensorsError,
                    {"tensor 'f16' element 3 (F16 -2.5)", "not an integer"});
}

TEST(SafetensorsDtypes, SmallIntegerDtypesAndBoolLoad) {
  const auto as_index = [](const char* name) {
    const auto t = attn::io::to_tensor<Index, 1>(conversions(), name);
    return std::vector<Index>(t.data(), t.data() + t.numel());
  };
  EXPECT_EQ(as_index("flags"), (std::vector<Index>{1, 0, 1}));
  EXPECT_EQ(as_index("u8"), (std::vector<Index>{0, 1, 255}));
  EXPECT_EQ(as_index("i8"), (std::vector<Index>{-128, -1, 127}));
  EXPECT_EQ(as_index("i16"), (std::vector<Index>{-32768, 7, 32767}));
  EXPECT_EQ(as_index("i32"), (std::vector<Index>{-2147483648LL, 42, 2147483647}));
  const auto flags = attn::io::to_tensor<float, 1>(conversions(), "flags");
  EXPECT_EQ(flags(0), 1.0f);
  EXPECT_EQ(flags(1), 0.0f);
  const auto i8 = attn::io::to_tensor<double, 1>(conversions(), "i8");
  EXPECT_EQ(i8(0), -128.0);
}

TEST(SafetensorsDtypes, UnsignedDtypesTorchCannotWriteAreReadToo) {
  // torch 1.13 has no uint16/32/64; their little-endian bytes are written out here.
  attn::io::SafetensorsFile file;
  file.tensors["u16"] = {attn::io::Dtype::U16, {2}, {0x34, 0x12, 0xff, 0xff}};
  file.tensors["u32"] = {attn::io::Dtype::U32, {1}, {0x78, 0x56, 0x34, 0x12}};
  file.tensors["u64"] = {
      attn::io::Dtype::U64, {2}, std::vector<unsigned char>(16, 0xff)};  // 2^64 - 1
  file.tensors["u64"].bytes[15] = 0x7f;  // element 1 = 2^63 - 1, the largest Index
  const auto parsed = attn::io::parse_safetensors(attn::io::serialize_safetensors(file));
  const auto u16 = attn::io::to_tensor<Index, 1>(parsed, "u16");
  EXPECT_EQ(u16(0), 0x1234);
  EXPECT_EQ(u16(1), 65535);
  EXPECT_EQ((attn::io::to_tensor<Index, 1>(parsed, "u32")(0)), 0x12345678);
  ATTN_EXPECT_ERROR((attn::io::to_tensor<Index, 1>(parsed, "u64")), SafetensorsError,
                    {"tensor 'u64' element 0 (U64 18446744073709551615)", "beyond attn::Index"});
  ATTN_EXPECT_ERROR((attn::io::to_tensor<double, 1>(parsed, "u64")), SafetensorsError,
                    {"element 0 (U64 18446744073709551615)", "not exactly representable"});
}

// ---- load_tensor and save_tensors -------------------------------------------------------------

TEST(SafetensorsDtypes, LoadTensorNamesFileTensorAndRank) {
  const std::string path = attn_test::fixture_path("conversions.safetensors");
  ATTN_EXPECT_ERROR(
      (attn::io::load_tensor<float, 3>(path, "ids")), SafetensorsError,
      {"conversions.safetensors", "tensor 'ids' has shape (2, 4), rank 2", "rank 3 was asked for"});
  ATTN_EXPECT_ERROR((attn::io::load_tensor<float, 1>(path, "idz")), SafetensorsError,
                    {"conversions.safetensors", "has no tensor 'idz'", "'bf16'"});
  ATTN_EXPECT_ERROR((attn::io::load_tensor<float, 1>("/nonexistent/x.safetensors", "x")),
                    SafetensorsError, {"/nonexistent/x.safetensors", "cannot open"});
}

TEST(SafetensorsDtypes, SaveTensorsWritesWhatLoadTensorReads) {
  const attn::Tensor<float, 2> x({2, 3}, {1.5f, -2, 3, 4, 5, 6.25f});
  const attn::Tensor<double, 1> y({2}, {0.1, -0.2});
  const attn::Tensor<Index, 2> ids({1, 2}, {7, 1LL << 40});
  const std::string path = ::testing::TempDir() + "attn_save_tensors.safetensors";
  attn::io::save_tensors(
      path, {{"x", x}, {"x.T", attn::transpose(x.view(), 0, 1)}, {"y", y}, {"ids", ids}},
      {{"note", "attn"}});
  const auto file = attn::io::read_safetensors(path);
  EXPECT_EQ(file.tensors.at("x").dtype, attn::io::Dtype::F32);
  EXPECT_EQ(file.tensors.at("y").dtype, attn::io::Dtype::F64);
  EXPECT_EQ(file.tensors.at("ids").dtype, attn::io::Dtype::I64);
  EXPECT_EQ(file.metadata.at("note"), "attn");
  const auto back = attn::io::load_tensor<float, 2>(path, "x.T");  // the view, made contiguous
  EXPECT_EQ(back.shape(), (attn::Shape<2>{3, 2}));
  EXPECT_EQ(back(0, 1), 4.0f);
  EXPECT_EQ(back(2, 1), 6.25f);
  EXPECT_EQ((attn::io::load_tensor<double, 1>(path, "y")(1)), -0.2);
  EXPECT_EQ((attn::io::load_tensor<Index, 2>(path, "ids")(0, 1)), Index{1} << 40);
  std::remove(path.c_str());
}

// ---- A layer's weights in every floating dtype, against PyTorch's forward -----------------------

/// Loads `weights` into MultiHeadAttention<Scalar>(3, 2, 6, 0, 2, qkv_bias) and compares its
/// forward on the fixture's x with PyTorch's output `reference`, normwise against the layer's
/// output scale with the layer tests' tolerance for the precision of the reference's forward.
template <typename Scalar, typename Reference>
void check_mha_forward(const std::string& weights, const std::string& reference) {
  SCOPED_TRACE(weights + " into MultiHeadAttention<" + attn::io::detail::scalar_name<Scalar>() +
               "> vs " + reference);
  const auto io = attn_test::load_io("mha_dtypes");
  attn::MultiHeadAttention<Scalar> layer(3, 2, 6, Scalar(0), 2, true, attn::Generator(7));
  attn::io::load_safetensors(layer, attn_test::fixture_path(weights));
  layer.eval();
  const auto x = attn::io::to_tensor<Scalar, 3>(io, "x");
  const auto expected = attn::io::to_tensor<Scalar, 3>(io, reference);
  const auto out = layer.forward(x.view());
  const attn_test::LayerScales scales =
      attn_test::layer_scales(attn::state_dict(layer), x, nullptr, 2);
  EXPECT_TRUE(attn_test::close_normwise(out, expected, scales.out,
                                        scales.template tolerance<Reference>(), "out"));
}

TEST(SafetensorsDtypes, BoolMaskStateDictLoads) {
  // The newcomer's file: float32 weights, `mask` saved as .bool().
  check_mha_forward<float, float>("mha_dtypes_bool_mask.safetensors", "out.f32");
  check_mha_forward<double, double>("mha_dtypes_bool_mask.safetensors", "out.f32_in_f64");
}

TEST(SafetensorsDtypes, F64WeightsLoadIntoFloatRoundedToNearest) {
  // PyTorch's reference: the float64 model .float() (round to nearest), forward in float32.
  check_mha_forward<float, float>("mha_dtypes_f64.safetensors", "out.f64_in_f32");
  check_mha_forward<double, double>("mha_dtypes_f64.safetensors", "out.f64");
}

TEST(SafetensorsDtypes, HalfAndBFloat16WeightsLoadExactly) {
  // PyTorch's reference: the 16-bit weights upcast to float32, forward in float32; loaded into
  // float the layer holds the same weights, so the two differ by float rounding only.
  check_mha_forward<float, float>("mha_dtypes_bf16.safetensors", "out.bf16_in_f32");
  check_mha_forward<float, float>("mha_dtypes_f16.safetensors", "out.f16_in_f32");
  check_mha_forward<double, float>("mha_dtypes_bf16.safetensors", "out.bf16_in_f32");
}

// ---- What is refused, and how it is said
// ---------------------------------------------------------

std::string write_temp(const attn::io::SafetensorsFile& file, const std::string& name) {
  std::string path = ::testing::TempDir() + name;
  attn::io::write_safetensors(path, file);
  return path;
}

TEST(SafetensorsDtypes, MaskIsCheckedInAnyDtype) {
  auto file = attn_test::read_fixture("mha_dtypes_bool_mask.safetensors");
  attn::MultiHeadAttention<float> layer(3, 2, 6, 0.f, 2, true);

  auto& mask = file.tensors.at("mask");
  mask.bytes[1] = 0;  // element (0, 1) is masked in triu(ones, 1)
  std::string path = write_temp(file, "attn_bad_bool_mask.safetensors");
  ATTN_EXPECT_ERROR(
      attn::io::load_safetensors(layer, path), SafetensorsError,
      {"attn_bad_bool_mask.safetensors", "mask buffer 'mask' (BOOL (6, 6)) is not the causal mask",
       "element (0, 1) is 0 where it should be 1"});

  // The same mask as I64 (correct) loads; as F32 with a 0.5 it does not.
  const auto causal_mask = [&](attn::io::Dtype dtype, auto one) {
    mask.dtype = dtype;
    mask.bytes.assign(36 * sizeof one, 0);
    for (std::size_t row = 0; row < 6; ++row) {
      for (std::size_t col = row + 1; col < 6; ++col) {
        std::memcpy(mask.bytes.data() + (row * 6 + col) * sizeof one, &one, sizeof one);
      }
    }
  };
  causal_mask(attn::io::Dtype::I64, std::int64_t{1});
  path = write_temp(file, "attn_i64_mask.safetensors");
  EXPECT_NO_THROW(attn::io::load_safetensors(layer, path));
  causal_mask(attn::io::Dtype::F32, 1.0f);
  const float half = 0.5f;
  std::memcpy(mask.bytes.data() + std::size_t{4} * 5, &half, 4);
  path = write_temp(file, "attn_f32_half_mask.safetensors");
  ATTN_EXPECT_ERROR(attn::io::load_safetensors(layer, path), SafetensorsError,
                    {"(F32 (6, 6))", "element (0, 5) is 0.5 where it should be 1"});
  std::remove(path.c_str());

  // A layer of another context_length: the mask's shape says so.
  attn::MultiHeadAttention<float> longer(3, 2, 8, 0.f, 2, true);
  ATTN_EXPECT_ERROR(attn::io::load_safetensors(
                        longer, attn_test::fixture_path("mha_dtypes_bool_mask.safetensors")),
                    SafetensorsError,
                    {"mha_dtypes_bool_mask.safetensors", "mask buffer 'mask' has shape (6, 6)",
                     "the layer's causal mask is (8, 8)"});
}

TEST(SafetensorsDtypes, IntegerParametersAreRefusedWithAHint) {
  auto file = attn_test::read_fixture("mha_dtypes_bool_mask.safetensors");
  file.tensors.at("W_value.bias").dtype = attn::io::Dtype::I32;  // same size as F32
  const std::string path = write_temp(file, "attn_int_parameter.safetensors");
  attn::MultiHeadAttention<double> layer(3, 2, 6, 0.0, 2, true, attn::Generator(3));
  const auto before = attn::state_dict(layer);
  ATTN_EXPECT_ERROR(attn::io::load_safetensors(layer, path), SafetensorsError,
                    {"attn_int_parameter.safetensors", "parameter 'W_value.bias' has dtype I32",
                     "from F64, F32, BF16 or F16", ".float()"});
  EXPECT_EQ(attn::state_dict(layer).at("W_query.weight").values,
            before.at("W_query.weight").values);  // nothing was modified
  std::remove(path.c_str());
}

}  // namespace
