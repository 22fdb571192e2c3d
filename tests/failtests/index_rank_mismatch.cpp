// Must not compile with ATTN_FAILTEST: indexing needs exactly one index per dimension.
#include <attn/tensor/tensor_view.hpp>

int main() {
  float data[6] = {};
  attn::TensorView<float, 2> view(data, {2, 3});
#ifdef ATTN_FAILTEST
  return static_cast<int>(view(1));
#else
  return static_cast<int>(view(1, 0));
#endif
}
