// Loading PyTorch fixtures (tests/fixtures/*.safetensors, made by generate.py) and comparing
// tensors with a stated tolerance, reporting the max absolute and relative error on failure.
#ifndef ATTN_TESTS_SUPPORT_FIXTURES_HPP
#define ATTN_TESTS_SUPPORT_FIXTURES_HPP

#include <gtest/gtest.h>

#include <algorithm>
#include <attn/attn.hpp>
#include <attn/io/safetensors.hpp>
#include <cmath>
#include <string>

namespace attn_test {

inline std::string fixture_path(const std::string& name) {
  return std::string(ATTN_FIXTURES_DIR) + "/" + name;
}

/// A file of tests/fixtures/ by its file name. (Defined in fixtures.cpp, as is load_io: the JSON
/// parser behind them is then compiled once for the whole suite, not in every test file.)
attn::io::SafetensorsFile read_fixture(const std::string& file_name);

/// The "<case>.io.safetensors" file of a case: inputs, outputs and metadata.
attn::io::SafetensorsFile load_io(const std::string& name);

inline attn::Index metadata_int(const attn::io::SafetensorsFile& file, const std::string& key) {
  return static_cast<attn::Index>(std::stoll(file.metadata.at(key)));
}

/// A named tensor of a fixture file as a Tensor of the given rank.
template <typename Scalar, int Rank>
attn::Tensor<Scalar, Rank> fixture_tensor(const attn::io::SafetensorsFile& file,
                                          const std::string& name) {
  const auto dict = attn::io::to_state_dict<Scalar>(
      attn::io::SafetensorsFile{{{name, file.tensors.at(name)}}, {}});
  const auto& tensor = dict.at(name);
  if (static_cast<int>(tensor.shape.size()) != Rank) {
    throw std::invalid_argument("fixture tensor '" + name + "' has the wrong rank");
  }
  attn::Shape<Rank> shape{};
  std::copy(tensor.shape.begin(), tensor.shape.end(), shape.begin());
  attn::Tensor<Scalar, Rank> result(shape);
  std::copy(tensor.values.begin(), tensor.values.end(), result.data());
  return result;
}

/// A fixture tensor of indices (token ids, class targets), which generate.py stores as F64 (from
/// when attn's safetensors reader held floating-point tensors only).
template <int Rank>
attn::Tensor<attn::Index, Rank> fixture_indices(const attn::io::SafetensorsFile& file,
                                                const std::string& name) {
  const auto values = fixture_tensor<double, Rank>(file, name);
  attn::Tensor<attn::Index, Rank> indices(values.shape());
  for (attn::Index i = 0; i < indices.numel(); ++i) {
    indices.data()[i] = static_cast<attn::Index>(values.data()[i]);
  }
  return indices;
}

/// Passes when every element satisfies |actual - expected| <= tolerance; otherwise reports
/// the max absolute error, the max relative error and where the worst element is.
template <typename A, typename E, int Rank>
::testing::AssertionResult all_close(const attn::TensorView<A, Rank>& actual,
                                     const attn::TensorView<E, Rank>& expected, double tolerance) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << "shape " << attn::to_string(actual.shape())
                                         << " != expected " << attn::to_string(expected.shape());
  }
  const attn::Tensor<std::remove_const_t<A>, Rank> a(actual);
  const attn::Tensor<std::remove_const_t<E>, Rank> e(expected);
  double max_abs = 0, max_rel = 0;
  attn::Index worst = -1;
  for (attn::Index i = 0; i < a.numel(); ++i) {
    const double x = static_cast<double>(a.data()[i]);
    const double y = static_cast<double>(e.data()[i]);
    const double abs_err = std::isnan(x) != std::isnan(y) ? INFINITY : std::abs(x - y);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (!(abs_err <= max_abs)) {
      max_abs = abs_err;
      worst = i;
    }
    max_rel = std::max(max_rel, abs_err / std::max(std::abs(y), 1e-30));
  }
  if (max_abs <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << max_abs << " (tolerance " << tolerance
                                       << "), max rel error " << max_rel << ", worst at flat index "
                                       << worst << ": " << static_cast<double>(a.data()[worst])
                                       << " vs expected " << static_cast<double>(e.data()[worst]);
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_FIXTURES_HPP
