// attn/viz/heatmap_png.hpp: the heatmap of attn/viz/heatmap.hpp as a PNG image. Encoding and
// glyph rendering come from Debian's stb (libstb-dev: stb_image_write, stb_truetype), whose
// compiled library this header needs at link time: link the target attn::viz
// (find_package(attn COMPONENTS viz)), or use `pkg-config --cflags --libs attn-viz` (or stb).
// Labels are drawn in a TrueType font: the path given, else $ATTN_HEATMAP_FONT, else the one
// attn::viz was configured with (fontconfig's `fc-match "DejaVu Sans"`, CMake option
// ATTN_HEATMAP_FONT), else Debian's DejaVu Sans (fonts-dejavu-core).
#ifndef ATTN_VIZ_HEATMAP_PNG_HPP
#define ATTN_VIZ_HEATMAP_PNG_HPP

#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "attn/viz/heatmap.hpp"

namespace attn {

#ifndef ATTN_HEATMAP_FONT  // attn::viz defines it as the font CMake found
#define ATTN_HEATMAP_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#endif
/// The font attn::viz was configured with (Debian's DejaVu Sans without CMake).
inline constexpr const char* default_heatmap_font = ATTN_HEATMAP_FONT;

/// The font PNG heatmaps use when none is given: $ATTN_HEATMAP_FONT when set, else
/// default_heatmap_font.
inline std::string heatmap_font() {
  const char* chosen = std::getenv("ATTN_HEATMAP_FONT");
  return chosen != nullptr && *chosen != '\0' ? chosen : default_heatmap_font;
}

namespace detail {

/// An RGB canvas with filled rectangles and anti-aliased text, enough for a labelled heatmap.
class Canvas {
 public:
  Canvas(int width, int height, const std::string& font_path)
      : width_(width), height_(height), pixels_(std::size_t(width) * std::size_t(height) * 3, 255) {
    std::ifstream in(font_path, std::ios::binary);
    font_data_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (font_data_.empty() || !stbtt_InitFont(&font_, font_data_.data(),
                                              stbtt_GetFontOffsetForIndex(font_data_.data(), 0))) {
      throw std::invalid_argument("heatmap PNG: cannot read the TrueType font '" + font_path +
                                  "' (Debian: fonts-dejavu-core; or name a .ttf file in "
                                  "ATTN_HEATMAP_FONT or as write_heatmap_png's font_path)");
    }
  }

  void fill(int x0, int y0, int w, int h, const std::array<int, 3>& rgb) {
    for (int y = std::max(0, y0); y < std::min(height_, y0 + h); ++y) {
      for (int x = std::max(0, x0); x < std::min(width_, x0 + w); ++x) set(x, y, rgb, 1.0);
    }
  }

  int text_width(const std::string& text, float pixels) const {
    const float scale = stbtt_ScaleForPixelHeight(&font_, pixels);
    int width = 0;
    for (unsigned char c : text) {
      int advance = 0, bearing = 0;
      stbtt_GetCodepointHMetrics(&font_, c, &advance, &bearing);
      width += static_cast<int>(std::lround(static_cast<float>(advance) * scale));
    }
    return width;
  }

  /// Draws `text` with its baseline at y; anchor 0 left, 1 centre, 2 right of x.
  void text(const std::string& text, int x, int y, float pixels, const std::array<int, 3>& rgb,
            int anchor = 0) {
    const float scale = stbtt_ScaleForPixelHeight(&font_, pixels);
    int pen = x - (anchor == 0   ? 0
                   : anchor == 1 ? text_width(text, pixels) / 2
                                 : text_width(text, pixels));
    for (unsigned char c : text) {
      int w = 0, h = 0, dx = 0, dy = 0;
      unsigned char* glyph = stbtt_GetCodepointBitmap(&font_, 0, scale, c, &w, &h, &dx, &dy);
      for (int gy = 0; gy < h; ++gy) {
        for (int gx = 0; gx < w; ++gx) {
          const int px = pen + dx + gx, py = y + dy + gy;
          if (px >= 0 && px < width_ && py >= 0 && py < height_) {
            set(px, py, rgb, glyph[gy * w + gx] / 255.0);
          }
        }
      }
      stbtt_FreeBitmap(glyph, nullptr);
      int advance = 0, bearing = 0;
      stbtt_GetCodepointHMetrics(&font_, c, &advance, &bearing);
      pen += static_cast<int>(std::lround(static_cast<float>(advance) * scale));
    }
  }

  void write_png(const std::string& path) const {
    if (!stbi_write_png(path.c_str(), width_, height_, 3, pixels_.data(), width_ * 3)) {
      throw std::invalid_argument("write_heatmap_png: cannot write '" + path + "'");
    }
  }

 private:
  void set(int x, int y, const std::array<int, 3>& rgb, double alpha) {
    unsigned char* p = &pixels_[(std::size_t(y) * std::size_t(width_) + std::size_t(x)) * 3];
    for (int c = 0; c < 3; ++c) {
      p[c] =
          static_cast<unsigned char>(std::lround(p[c] * (1 - alpha) + rgb[std::size_t(c)] * alpha));
    }
  }

  int width_, height_;
  std::vector<unsigned char> pixels_;
  std::vector<unsigned char> font_data_;
  mutable stbtt_fontinfo font_{};  // stb's metric queries take a non-const pointer
};

}  // namespace detail

/// Writes the heatmap of a (queries, keys) weight matrix as a PNG: the same layout, colours and
/// labels as heatmap_svg.
/// @throws std::invalid_argument as heatmap_svg, for an unreadable font, or naming the path if
///         it cannot be written.
template <typename T>
void write_heatmap_png(const std::string& path, const TensorView<T, 2>& weights,
                       const HeatmapOptions& options = {},
                       const std::string& font_path = heatmap_font()) {
  const auto L = detail::heatmap_layout(weights, options);
  detail::Canvas canvas(L.width, L.height, font_path);
  const std::array<int, 3> black{0, 0, 0}, white{255, 255, 255}, grey{200, 200, 200};
  canvas.text(options.title, L.left, 22, 16, black);
  for (Index j = 0; j < L.columns; ++j) {
    canvas.text(L.column_labels[std::size_t(j)], L.left + L.cell * int(j) + L.cell / 2, L.top - 8,
                13, black, 1);
  }
  for (Index i = 0; i < L.rows; ++i) {
    const int y = L.top + L.cell * int(i);
    canvas.text(L.row_labels[std::size_t(i)], L.left - 8, y + L.cell / 2 + 5, 13, black, 2);
    for (Index j = 0; j < L.columns; ++j) {
      const double value = L.values[std::size_t(i * L.columns + j)];
      const auto rgb = detail::heatmap_colour(value, options.min, options.max);
      const int x = L.left + L.cell * int(j);
      canvas.fill(x, y, L.cell, L.cell, grey);  // 1-pixel grid lines between cells
      canvas.fill(x + 1, y + 1, L.cell - 1, L.cell - 1, rgb);
      const std::string text = detail::heatmap_cell_text(value);
      const bool dark = rgb[0] + rgb[1] + rgb[2] < 3 * 140;
      if (!text.empty())
        canvas.text(text, x + L.cell / 2, y + L.cell / 2 + 5, 13, dark ? white : black, 1);
    }
  }
  const int bar_height = L.cell * int(std::max<Index>(L.rows, 3));
  for (int y = 0; y < bar_height; ++y) {
    const double t = 1 - double(y) / double(bar_height - 1);
    canvas.fill(L.legend_x, L.top + y, L.legend_width, 1,
                detail::heatmap_colour(options.min + t * (options.max - options.min), options.min,
                                       options.max));
  }
  canvas.text(detail::concat(options.max), L.legend_x + L.legend_width + 6, L.top + 10, 13, black);
  canvas.text(detail::concat(options.min), L.legend_x + L.legend_width + 6, L.top + bar_height, 13,
              black);
  canvas.write_png(path);
}

}  // namespace attn

#endif  // ATTN_VIZ_HEATMAP_PNG_HPP
