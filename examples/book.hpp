// What every chapter-3 example shares: the book's six-token input and printing in PyTorch's
// format, so each program's output reads like the book's notebook.
#ifndef ATTN_EXAMPLES_BOOK_HPP
#define ATTN_EXAMPLES_BOOK_HPP

#include <attn/attn.hpp>
#include <attn/viz/heatmap_png.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace book {

/// "Your journey starts with one step", as the book's 3-dimensional embeddings.
inline attn::Tensor<float, 2> inputs() {
  return attn::Tensor<float, 2>({6, 3}, {0.43f, 0.15f, 0.89f,    // Your     (x^1)
                                         0.55f, 0.87f, 0.66f,    // journey  (x^2)
                                         0.57f, 0.85f, 0.64f,    // starts   (x^3)
                                         0.22f, 0.58f, 0.33f,    // with     (x^4)
                                         0.77f, 0.25f, 0.10f,    // one      (x^5)
                                         0.05f, 0.80f, 0.55f});  // step     (x^6)
}

inline const char* const tokens[] = {"Your", "journey", "starts", "with", "one", "step"};

/// torch.stack((inputs, inputs), dim=0): the book's batch of two.
inline attn::Tensor<float, 3> batch_of_two() {
  const auto x = inputs();
  attn::Tensor<float, 3> batch({2, 6, 3});
  for (attn::Index i = 0; i < x.numel(); ++i) {
    batch.data()[i] = batch.data()[i + x.numel()] = x.data()[i];
  }
  return batch;
}

/// print(name); print(tensor) — a title line, the tensor as PyTorch prints it, a blank line.
template <typename View>
void show(const std::string& title, const View& view) {
  std::printf("%s\n%s\n\n", title.c_str(), attn::format_tensor(view).c_str());
}

/// print(name); print(tensor) for a 0-d tensor: `tensor(1.8524)`.
inline void show_scalar(const std::string& title, double value) {
  std::printf("%s\ntensor(%.4f)\n\n", title.c_str(), value);
}

/// PyTorch's torch.Size([2, 6, 3]).
template <typename ShapeArray>
std::string size(const ShapeArray& shape) {
  std::string text = "torch.Size([";
  for (std::size_t d = 0; d < shape.size(); ++d) {
    text += (d ? ", " : "") + std::to_string(shape[d]);
  }
  return text + "])";
}

/// Writes heatmaps/<name>.svg and heatmaps/<name>.png (under the working directory) of a
/// (query, key) weight matrix over the book's six tokens, and says where.
template <typename View>
void write_heatmaps(const std::string& name, const View& weights, const std::string& title) {
  std::filesystem::create_directories("heatmaps");
  attn::HeatmapOptions options;
  options.title = title;
  options.row_labels = options.column_labels = std::vector<std::string>(tokens, tokens + 6);
  const std::string stem = "heatmaps/" + name;
  attn::write_heatmap_svg(stem + ".svg", weights, options);
  attn::write_heatmap_png(stem + ".png", weights, options);
  std::printf("heatmap written: %s.svg and %s.png\n\n", stem.c_str(), stem.c_str());
}

}  // namespace book

#endif  // ATTN_EXAMPLES_BOOK_HPP
