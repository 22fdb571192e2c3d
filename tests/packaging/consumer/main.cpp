// A consumer of attn: splits heads of a small tensor and multiplies a head through Eigen.
#include <attn/attn.hpp>
#include <cstdio>

int main() {
  attn::Tensor<float, 3> x({1, 2, 4});
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i);
  const auto heads = attn::split_heads(x.view(), 2);  // (1, 2, 2, 2)
  const auto head1 = attn::select(attn::select(heads, 0, 0), 0, 1);
  const float trace = attn::as_matrix(head1).trace();  // rows [2 3] and [6 7] -> 2 + 7
  std::printf("attn %d.%d.%d: head-1 trace %.1f\n", ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR,
              ATTN_VERSION_PATCH, static_cast<double>(trace));
  return trace == 9.0f ? 0 : 1;
}
