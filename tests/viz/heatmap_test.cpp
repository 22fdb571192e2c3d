// The heatmap writers: the SVG holds one coloured cell per weight with its value (blank for an
// exact zero, so a causal mask's upper triangle is visibly empty), the labels and the legend;
// the PNG is a real PNG of the layout's size.
#include "attn/viz/heatmap.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "attn/tensor/tensor.hpp"
#include "attn/viz/heatmap_png.hpp"
#include "support/expect_error.hpp"

namespace {

using attn::Tensor;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

attn::HeatmapOptions labelled() {
  attn::HeatmapOptions options;
  options.title = "causal <weights>";
  options.row_labels = {"Your", "journey"};
  options.column_labels = {"Your", "journey", "starts"};
  return options;
}

TEST(Heatmap, SvgHasACellPerWeightLabelsAndLegend) {
  const Tensor<float, 2> weights({2, 3}, {1.f, 0.f, 0.f, 0.55f, 0.45f, 0.f});
  const std::string svg = attn::heatmap_svg(weights.view(), labelled());
  EXPECT_EQ(count(svg, "<rect x="), 6u + 1u) << "six cells and the legend bar";
  EXPECT_EQ(count(svg, ">1.00</text>"), 1u);
  EXPECT_EQ(count(svg, ">0.55</text>"), 1u);
  EXPECT_EQ(count(svg, ">0.45</text>"), 1u);
  EXPECT_EQ(count(svg, ">0.00</text>"), 0u) << "masked (zero) cells stay blank";
  EXPECT_EQ(count(svg, ">journey</text>"), 2u) << "row and column label";
  EXPECT_EQ(count(svg, ">starts</text>"), 1u);
  EXPECT_NE(svg.find("causal &lt;weights&gt;"), std::string::npos) << "title, escaped";
  EXPECT_EQ(count(svg, "fill=\"rgb(12,32,96)\""), 1u) << "weight 1 is the darkest colour";
  EXPECT_EQ(count(svg, "fill=\"rgb(255,255,255)\""), 3u) << "weight 0 is white";
  EXPECT_NE(svg.find("linearGradient"), std::string::npos);
}

TEST(Heatmap, PngHasTheLayoutsSize) {
  const Tensor<float, 2> weights({2, 3}, {1.f, 0.f, 0.f, 0.55f, 0.45f, 0.f});
  const std::string path = ::testing::TempDir() + "attn_heatmap_test.png";
  attn::write_heatmap_png(path, weights.view(), labelled());
  std::ifstream in(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const auto big_endian = [&](std::size_t at) {
    return (std::uint32_t(std::uint8_t(bytes[at])) << 24) |
           (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) | std::uint8_t(bytes[at + 3]);
  };
  const auto layout = attn::detail::heatmap_layout(weights.view(), labelled());
  EXPECT_EQ(big_endian(16), std::uint32_t(layout.width));
  EXPECT_EQ(big_endian(20), std::uint32_t(layout.height));
  std::remove(path.c_str());
}

TEST(Heatmap, RejectsBadOptions) {
  const Tensor<float, 2> weights({2, 3});
  attn::HeatmapOptions options = labelled();
  options.row_labels = {"only one"};
  ATTN_EXPECT_ERROR(attn::heatmap_svg(weights.view(), options), std::invalid_argument,
                    {"1 row_labels", "2 rows"});
  options = labelled();
  options.max = 0;
  ATTN_EXPECT_ERROR(attn::heatmap_svg(weights.view(), options), std::invalid_argument,
                    {"max (0)", "min (0)"});
  ATTN_EXPECT_ERROR(
      attn::write_heatmap_png("/tmp/x.png", weights.view(), labelled(), "/no/font.ttf"),
      std::invalid_argument, {"/no/font.ttf", "ATTN_HEATMAP_FONT"});
}

TEST(Heatmap, FontComesFromTheEnvironmentElseTheConfiguredOne) {
  // $ATTN_HEATMAP_FONT wins over the font CMake configured (a path that exists).
  EXPECT_TRUE(std::ifstream(attn::default_heatmap_font).good()) << attn::default_heatmap_font;
  ASSERT_EQ(setenv("ATTN_HEATMAP_FONT", "/no/such/font.ttf", 1), 0);
  EXPECT_EQ(attn::heatmap_font(), "/no/such/font.ttf");
  const Tensor<float, 2> weights({2, 3});
  ATTN_EXPECT_ERROR(
      attn::write_heatmap_png(::testing::TempDir() + "attn_font.png", weights.view(), labelled()),
      std::invalid_argument, {"/no/such/font.ttf"});
  ASSERT_EQ(unsetenv("ATTN_HEATMAP_FONT"), 0);
  EXPECT_EQ(attn::heatmap_font(), attn::default_heatmap_font);
}

}  // namespace
