// attn/viz/heatmap.hpp: attention weights as a picture: one cell per (query, key) weight,
// token labels on both axes, a colour scale legend. This header writes SVG (text, opens in any
// browser, no dependency); attn/viz/heatmap_png.hpp rasterises the same layout to PNG.
#ifndef ATTN_VIZ_HEATMAP_HPP
#define ATTN_VIZ_HEATMAP_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "attn/config.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

struct HeatmapOptions {
  std::string title;
  std::vector<std::string> row_labels;     ///< one per query (row); empty: 0, 1, 2, ...
  std::vector<std::string> column_labels;  ///< one per key (column); empty: 0, 1, 2, ...
  double min = 0;  ///< the colour scale's ends; attention weights are probabilities
  double max = 1;
  int cell = 56;  ///< cell size in pixels
};

namespace detail {

/// Where everything goes, shared by the SVG and PNG writers so both pictures agree.
struct HeatmapLayout {
  Index rows, columns;
  int cell, left, top, legend_x, legend_width, width, height;
  std::vector<std::string> row_labels, column_labels;
  std::vector<double> values;  // row-major
  HeatmapOptions options;
};

template <typename T>
HeatmapLayout heatmap_layout(const TensorView<T, 2>& weights, const HeatmapOptions& options) {
  HeatmapLayout layout;
  layout.rows = weights.size(0);
  layout.columns = weights.size(1);
  layout.options = options;
  if (!(options.max > options.min)) {
    throw std::invalid_argument(
        concat("heatmap: max (", options.max, ") must exceed min (", options.min, ")"));
  }
  if (options.cell < 8)
    throw std::invalid_argument(concat("heatmap: cell (", options.cell, ") < 8"));
  const auto labels = [](const std::vector<std::string>& given, Index count, const char* name) {
    if (given.empty()) {
      std::vector<std::string> numbers;
      for (Index i = 0; i < count; ++i) numbers.push_back(std::to_string(i));
      return numbers;
    }
    if (static_cast<Index>(given.size()) != count) {
      throw std::invalid_argument(concat("heatmap: ", given.size(), " ", name, " for ", count, " ",
                                         name == std::string("row_labels") ? "rows" : "columns"));
    }
    return given;
  };
  layout.row_labels = labels(options.row_labels, layout.rows, "row_labels");
  layout.column_labels = labels(options.column_labels, layout.columns, "column_labels");
  for (Index i = 0; i < layout.rows; ++i) {
    for (Index j = 0; j < layout.columns; ++j) layout.values.push_back(double(weights(i, j)));
  }
  std::size_t longest = 1;
  for (const auto& label : layout.row_labels) longest = std::max(longest, label.size());
  layout.cell = options.cell;
  layout.left = 16 + 8 * static_cast<int>(longest);
  layout.top = 56;
  layout.legend_x = layout.left + layout.cell * static_cast<int>(layout.columns) + 24;
  layout.legend_width = 16;
  layout.width = layout.legend_x + layout.legend_width + 56;
  layout.height = layout.top + layout.cell * static_cast<int>(std::max<Index>(layout.rows, 3)) + 16;
  return layout;
}

/// A white-to-deep-blue scale: low weights fade into the background, high ones stand out.
inline std::array<int, 3> heatmap_colour(double value, double min, double max) {
  double t = std::isnan(value) ? 0 : (value - min) / (max - min);
  t = std::clamp(t, 0.0, 1.0);
  constexpr double stops[3][3] = {{255, 255, 255}, {66, 133, 200}, {12, 32, 96}};
  const int segment = t < 0.5 ? 0 : 1;
  const double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
  std::array<int, 3> rgb{};
  for (int c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(
        std::lround(stops[segment][c] + u * (stops[segment + 1][c] - stops[segment][c])));
  }
  return rgb;
}

inline std::string escape_xml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// The number a cell shows: two decimals, none for an exact zero (a masked weight stays blank).
inline std::string heatmap_cell_text(double value) {
  if (value == 0) return "";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", value);
  return buffer;
}

}  // namespace detail

/// The heatmap of a (queries, keys) weight matrix as an SVG document.
/// @throws std::invalid_argument for label counts that differ from the matrix, or max <= min.
template <typename T>
std::string heatmap_svg(const TensorView<T, 2>& weights, const HeatmapOptions& options = {}) {
  const auto L = detail::heatmap_layout(weights, options);
  std::string svg;
  const auto add = [&](const auto&... parts) { svg += detail::concat(parts...); };
  add("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", L.width, "\" height=\"", L.height,
      "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"13\">\n");
  add("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  add("<text x=\"", L.left, "\" y=\"20\" font-size=\"15\" font-weight=\"bold\">",
      detail::escape_xml(options.title), "</text>\n");
  for (Index j = 0; j < L.columns; ++j) {  // key labels above the columns
    add("<text x=\"", L.left + L.cell * j + L.cell / 2, "\" y=\"", L.top - 8,
        "\" text-anchor=\"middle\">", detail::escape_xml(L.column_labels[std::size_t(j)]),
        "</text>\n");
  }
  for (Index i = 0; i < L.rows; ++i) {
    const int y = L.top + L.cell * static_cast<int>(i);
    add("<text x=\"", L.left - 8, "\" y=\"", y + L.cell / 2 + 5, "\" text-anchor=\"end\">",
        detail::escape_xml(L.row_labels[std::size_t(i)]), "</text>\n");
    for (Index j = 0; j < L.columns; ++j) {
      const double value = L.values[std::size_t(i * L.columns + j)];
      const auto rgb = detail::heatmap_colour(value, options.min, options.max);
      const int x = L.left + L.cell * static_cast<int>(j);
      add("<rect x=\"", x, "\" y=\"", y, "\" width=\"", L.cell, "\" height=\"", L.cell,
          "\" fill=\"rgb(", rgb[0], ",", rgb[1], ",", rgb[2], ")\" stroke=\"#dddddd\"/>\n");
      const std::string text = detail::heatmap_cell_text(value);
      if (!text.empty()) {
        const bool dark = rgb[0] + rgb[1] + rgb[2] < 3 * 140;
        add("<text x=\"", x + L.cell / 2, "\" y=\"", y + L.cell / 2 + 5,
            "\" text-anchor=\"middle\" fill=\"", dark ? "white" : "black", "\">", text,
            "</text>\n");
      }
    }
  }
  // Legend: a vertical colour bar from max (top) to min (bottom), labelled at both ends.
  const int bar_height = L.cell * static_cast<int>(std::max<Index>(L.rows, 3));
  add("<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
  for (int stop = 0; stop <= 4; ++stop) {
    const double t = stop / 4.0;
    const auto rgb = detail::heatmap_colour(options.min + t * (options.max - options.min),
                                            options.min, options.max);
    add("<stop offset=\"", t, "\" stop-color=\"rgb(", rgb[0], ",", rgb[1], ",", rgb[2], ")\"/>");
  }
  add("</linearGradient></defs>\n");
  add("<rect x=\"", L.legend_x, "\" y=\"", L.top, "\" width=\"", L.legend_width, "\" height=\"",
      bar_height, "\" fill=\"url(#scale)\" stroke=\"#888888\"/>\n");
  add("<text x=\"", L.legend_x + L.legend_width + 6, "\" y=\"", L.top + 10, "\">", options.max,
      "</text>\n");
  add("<text x=\"", L.legend_x + L.legend_width + 6, "\" y=\"", L.top + bar_height, "\">",
      options.min, "</text>\n");
  add("</svg>\n");
  return svg;
}

/// Writes heatmap_svg(weights, options) to `path`.
/// @throws std::invalid_argument as heatmap_svg, or naming the path if it cannot be written.
template <typename T>
void write_heatmap_svg(const std::string& path, const TensorView<T, 2>& weights,
                       const HeatmapOptions& options = {}) {
  const std::string svg = heatmap_svg(weights, options);
  std::ofstream out(path);
  if (!(out << svg)) throw std::invalid_argument("write_heatmap_svg: cannot write '" + path + "'");
}

}  // namespace attn

#endif  // ATTN_VIZ_HEATMAP_HPP
