// attn/io/dtype.hpp: the element types of the safetensors format (Dtype: names, sizes) and how
// one stored element is read exactly: F16 and BF16 widened to float bit for bit, floating values
// as double, integers as sign and magnitude, so every conversion can check that a value fits
// before it is made. Part of the component attn::io.
#ifndef ATTN_IO_DTYPE_HPP
#define ATTN_IO_DTYPE_HPP

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/bfloat16.hpp"

namespace attn::io {

static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "attn's safetensors reader assumes IEEE-754 float and double.");

/// The element types of the safetensors format (its names, as in the JSON header).
enum class Dtype { BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64 };

namespace detail {

struct DtypeInfo {
  const char* name;
  Index size;  // bytes per element
  Dtype dtype;
  bool floating;
};

inline constexpr DtypeInfo dtype_table[] = {
    {"BOOL", 1, Dtype::BOOL, false}, {"U8", 1, Dtype::U8, false},    {"I8", 1, Dtype::I8, false},
    {"U16", 2, Dtype::U16, false},   {"I16", 2, Dtype::I16, false},  {"U32", 4, Dtype::U32, false},
    {"I32", 4, Dtype::I32, false},   {"U64", 8, Dtype::U64, false},  {"I64", 8, Dtype::I64, false},
    {"F16", 2, Dtype::F16, true},    {"BF16", 2, Dtype::BF16, true}, {"F32", 4, Dtype::F32, true},
    {"F64", 8, Dtype::F64, true},
};

inline const DtypeInfo& dtype_info(Dtype dtype) {
  for (const auto& info : dtype_table) {
    if (info.dtype == dtype) return info;
  }
  return dtype_table[0];  // unreachable for a valid enumerator
}

}  // namespace detail

inline const char* dtype_name(Dtype dtype) {
  return detail::dtype_info(dtype).name;
}
inline Index dtype_size(Dtype dtype) {
  return detail::dtype_info(dtype).size;
}
/// F16, BF16, F32 and F64: the dtypes a parameter may have.
inline bool is_floating(Dtype dtype) {
  return detail::dtype_info(dtype).floating;
}

/// The dtype attn saves a Scalar as: F32 for float, F64 for double, I64 for attn::Index.
template <typename Scalar>
constexpr Dtype dtype_of() {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double> ||
                    (std::is_same_v<Scalar, Index> && sizeof(Index) == 8),
                "attn saves float (F32), double (F64) or attn::Index (I64) tensors.");
  if constexpr (std::is_same_v<Scalar, float>) {
    return Dtype::F32;
  } else if constexpr (std::is_same_v<Scalar, double>) {
    return Dtype::F64;
  } else {
    return Dtype::I64;
  }
}

namespace detail {

/// IEEE half (F16) to float, exactly: every half is a float. Subnormal halves (m * 2^-24) become
/// normal floats; infinities stay infinite; a NaN keeps its sign and payload (the quiet bit is
/// the top mantissa bit in both formats).
inline float f16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  std::uint32_t mantissa = bits & 0x3ffu;
  std::uint32_t wide = sign;
  if (exponent == 0x1f) {
    wide |= 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    wide |= ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa != 0) {
    // Normalise: shift the leading one up to the implicit bit, one binade down per shift, from
    // the exponent of the smallest normal half, 2^-14.
    std::uint32_t biased = 127 - 14;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --biased;
    }
    wide |= (biased << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value = 0;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

/// The element at `at`, copied as it is: the file is little-endian, and so is the host (the
/// parser checks that before any element is read).
template <typename T>
T read_element(const unsigned char* at) {
  T value{};
  std::memcpy(&value, at, sizeof value);
  return value;
}

/// One element of a file, exactly: a floating value widened to double (exact for F16, BF16 and
/// F32), or an integer as sign and magnitude (so all of U64 and I64 fit).
struct Element {
  bool floating = false;
  bool single = false;  // F16, BF16 or F32: printed as the float it is
  double real = 0;
  bool negative = false;
  std::uint64_t magnitude = 0;

  /// The value as messages show it: an integer in full, a floating value with the fewest digits
  /// that read back as the same float or double (1e+300, not 1.0000000000000001e+300).
  std::string text() const {
    if (!floating) return (negative ? "-" : "") + std::to_string(magnitude);
    std::string shortest;
    for (int digits = 1; digits <= 17; ++digits) {
      std::ostringstream out;
      out.precision(digits);
      out << real;
      shortest = out.str();
      if (!std::isfinite(real)) break;
      const double back = std::strtod(shortest.c_str(), nullptr);
      if (single ? static_cast<float>(back) == static_cast<float>(real) : back == real) break;
    }
    return shortest;
  }
};

inline Element signed_element(std::int64_t value) {
  Element e;
  e.negative = value < 0;
  // -(value + 1) + 1 avoids overflowing at the most negative value.
  e.magnitude =
      e.negative ? static_cast<std::uint64_t>(-(value + 1)) + 1 : static_cast<std::uint64_t>(value);
  return e;
}
inline Element unsigned_element(std::uint64_t value) {
  Element e;
  e.magnitude = value;
  return e;
}
inline Element floating_element(double value, bool single) {
  Element e;
  e.floating = true;
  e.single = single;
  e.real = value;
  return e;
}

/// Element i of little-endian data of the given dtype.
inline Element element(Dtype dtype, const unsigned char* data, std::size_t i) {
  const unsigned char* at = data + i * static_cast<std::size_t>(dtype_size(dtype));
  switch (dtype) {
    case Dtype::BOOL:
    case Dtype::U8:
      return unsigned_element(read_element<std::uint8_t>(at));
    case Dtype::I8:
      return signed_element(read_element<std::int8_t>(at));
    case Dtype::U16:
      return unsigned_element(read_element<std::uint16_t>(at));
    case Dtype::I16:
      return signed_element(read_element<std::int16_t>(at));
    case Dtype::U32:
      return unsigned_element(read_element<std::uint32_t>(at));
    case Dtype::I32:
      return signed_element(read_element<std::int32_t>(at));
    case Dtype::U64:
      return unsigned_element(read_element<std::uint64_t>(at));
    case Dtype::I64:
      return signed_element(read_element<std::int64_t>(at));
    case Dtype::F16:
      return floating_element(f16_to_float(read_element<std::uint16_t>(at)), true);
    case Dtype::BF16:
      return floating_element(bfloat16_to_float(read_element<std::uint16_t>(at)), true);
    case Dtype::F32:
      return floating_element(read_element<float>(at), true);
    case Dtype::F64:
      return floating_element(read_element<double>(at), false);
  }
  return {};
}

}  // namespace detail
}  // namespace attn::io

#endif  // ATTN_IO_DTYPE_HPP
