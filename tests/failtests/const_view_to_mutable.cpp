// Must not compile with ATTN_FAILTEST: a const view never converts back to a mutable one.
#include <attn/tensor/tensor_view.hpp>

int main() {
  float data[6] = {};
  attn::TensorView<float, 2> mutable_view(data, {2, 3});
  attn::TensorView<const float, 2> const_view = mutable_view;  // the allowed direction
#ifdef ATTN_FAILTEST
  attn::TensorView<float, 2> back = const_view;
  back(0, 0) = 1.0f;
#endif
  return static_cast<int>(const_view(0, 0));
}
