// The attn demo: a guided tour of what the library holds so far, on the book's six-token input
// "Your journey starts with one step" (chapter 3, section 3.3).
#include <attn/attn.hpp>
#include <cstdio>
#include <string>

namespace {

template <typename T>
void print_matrix(const char* title, const attn::TensorView<T, 2>& view) {
  std::printf("%s  shape %s  strides %s\n", title, attn::to_string(view.shape()).c_str(),
              attn::to_string(view.strides()).c_str());
  for (attn::Index i = 0; i < view.size(0); ++i) {
    std::printf("  [");
    for (attn::Index j = 0; j < view.size(1); ++j) {
      std::printf("%s%7.4f", j ? ", " : "", static_cast<double>(view(i, j)));
    }
    std::printf("]\n");
  }
}

}  // namespace

int main() {
  std::printf("attn %d.%d.%d: header-only tensor views and attention on Eigen %d.%d.%d\n\n",
              ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR, ATTN_VERSION_PATCH, EIGEN_WORLD_VERSION,
              EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);

  // One 3-d embedding per token, the book's `inputs` tensor.
  const attn::Tensor<float, 2> inputs({6, 3}, {0.43f, 0.15f, 0.89f,    // Your
                                               0.55f, 0.87f, 0.66f,    // journey
                                               0.57f, 0.85f, 0.64f,    // starts
                                               0.22f, 0.58f, 0.33f,    // with
                                               0.77f, 0.25f, 0.10f,    // one
                                               0.05f, 0.80f, 0.55f});  // step
  print_matrix("inputs", inputs.view());

  // Views cost nothing: the transpose and the slice below share the tensor's memory.
  print_matrix("\ninputs.T (a view)", attn::transpose(inputs.view(), 0, 1));
  print_matrix("\ntokens 1..3 (a view)", attn::slice(inputs.view(), 0, 1, 4));

  // Eigen works on the same memory: the attention scores x . x^T of section 3.3.1.
  const auto x = attn::as_matrix(inputs.view());
  attn::Tensor<float, 2> scores({6, 6});
  attn::as_matrix(scores.view()).noalias() = x * x.transpose();
  print_matrix("\nattention scores inputs @ inputs.T (Eigen GEMM on the views)", scores.view());

  // The multi-head split (B, T, H*D) -> (B, H, T, D), again a view.
  const auto batch = attn::reshape<3>(inputs.view(), attn::Shape<3>{2, 3, 3});
  attn::Tensor<float, 3> wide({1, 6, 4});
  for (attn::Index i = 0; i < wide.numel(); ++i) wide.data()[i] = static_cast<float>(i);
  const auto heads = attn::split_heads(wide.view(), 2);
  std::printf("\nreshape (6, 3) -> %s; split_heads (1, 6, 4) -> %s with strides %s\n",
              attn::to_string(batch.shape()).c_str(), attn::to_string(heads.shape()).c_str(),
              attn::to_string(heads.strides()).c_str());
  print_matrix("head 1 of the split", attn::select(attn::select(heads, 0, 0), 0, 1));
  return 0;
}
