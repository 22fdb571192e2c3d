// Must not compile with ATTN_FAILTEST: a TensorView<const T, R> is read-only.
#include <attn/tensor/tensor_view.hpp>

int main() {
  float data[6] = {};
  attn::TensorView<const float, 2> view(data, {2, 3});
#ifdef ATTN_FAILTEST
  view(1, 2) = 1.0f;
#endif
  return static_cast<int>(view(1, 2));
}
