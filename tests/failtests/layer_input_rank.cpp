// Must not compile with ATTN_FAILTEST: a batched layer takes a (B, T, d_in) view, so a rank
// mismatch between a layer and its input is caught by the compiler, not at run time.
#include <attn/layers/multi_head_attention.hpp>

int main() {
  attn::MultiHeadAttention<float> layer(3, 4, 6, 0.f, 2);
#ifdef ATTN_FAILTEST
  const attn::Tensor<float, 2> x({6, 3});
#else
  const attn::Tensor<float, 3> x({1, 6, 3});
#endif
  return static_cast<int>(layer.forward(x.view()).numel() == 0);
}
