// attn/tensor/format.hpp: tensors printed the way PyTorch prints them, so a learner can put
// attn's output next to the book's and compare digit by digit.
#ifndef ATTN_TENSOR_FORMAT_HPP
#define ATTN_TENSOR_FORMAT_HPP

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "attn/config.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

namespace detail {

template <typename T, int Rank>
void collect_elements(const TensorView<T, Rank>& view, int dim, Index offset,
                      std::vector<double>& out) {
  for (Index i = 0; i < view.shape()[dim]; ++i) {
    const Index at = offset + i * view.strides()[dim];
    if (dim + 1 == Rank) {
      out.push_back(static_cast<double>(view.data()[at]));
    } else {
      collect_elements(view, dim + 1, at, out);
    }
  }
}

// PyTorch's print width (torch.set_printoptions(linewidth=80)): a row of the last dimension
// wraps after as many cells as fit, continuing one column right of its bracket.
constexpr std::size_t print_line_width = 80;

template <typename ShapeArray>
void write_nested(const ShapeArray& shape, int dim, const std::vector<std::string>& cells,
                  std::size_t& next, std::size_t width, std::string& text) {
  constexpr int Rank = static_cast<int>(std::tuple_size<ShapeArray>::value);
  const std::size_t indent = std::string("tensor(").size() + static_cast<std::size_t>(dim);
  const std::size_t per_line = std::max<std::size_t>(
      1, (print_line_width - std::min(indent, print_line_width)) / (width + 2));
  text += '[';
  for (Index i = 0; i < shape[dim]; ++i) {
    if (i > 0) {
      text += ',';
      if (dim + 1 == Rank) {
        if (static_cast<std::size_t>(i) % per_line == 0) {
          text += '\n' + std::string(indent + 1, ' ');
        } else {
          text += ' ';
        }
      } else {
        // A new row (or block) starts under the first one: one blank line per level above rows.
        text += std::string(static_cast<std::size_t>(Rank - dim - 1), '\n');
        text += std::string(indent + 1, ' ');
      }
    }
    if (dim + 1 == Rank) {
      const std::string& cell = cells[next++];
      text += std::string(width - cell.size(), ' ') + cell;
    } else {
      write_nested(shape, dim + 1, cells, next, width, text);
    }
  }
  text += ']';
}

}  // namespace detail

/// The view as PyTorch prints it: `tensor([[0.2996, 0.8053], [0.3061, 0.8210]])` with PyTorch's
/// line breaks (rows wrap at 80 columns), indentation and common column width. Integer tensors
/// (token ids) print as `6109`, whole-number floating tensors as `2.`, others with `decimals`
/// digits in fixed notation (PyTorch's default, 4; attn never switches to scientific notation).
/// Any strides.
template <typename T, int Rank>
std::string format_tensor(const TensorView<T, Rank>& view, int decimals = 4) {
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(view.numel()));
  detail::collect_elements(view, 0, 0, values);
  const bool whole = std::all_of(values.begin(), values.end(), [](double value) {
    return std::isfinite(value) && value == std::floor(value) && std::abs(value) < 1e15;
  });
  std::vector<std::string> cells;
  std::size_t width = 0;
  for (double value : values) {
    char buffer[64];
    if (std::isnan(value)) {
      std::snprintf(buffer, sizeof buffer, "nan");
    } else if (std::isinf(value)) {
      std::snprintf(buffer, sizeof buffer, value > 0 ? "inf" : "-inf");
    } else if (std::is_integral_v<std::remove_const_t<T>>) {
      std::snprintf(buffer, sizeof buffer, "%.0f", value);
    } else if (whole) {
      std::snprintf(buffer, sizeof buffer, "%.0f.", value + 0.0);  // + 0.0: no "-0."
    } else {
      std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    }
    cells.emplace_back(buffer);
    width = std::max(width, cells.back().size());
  }
  std::string text = "tensor(";
  std::size_t next = 0;
  detail::write_nested(view.shape(), 0, cells, next, width, text);
  return text + ")";
}

}  // namespace attn

#endif  // ATTN_TENSOR_FORMAT_HPP
