// format_tensor against strings printed by Debian's python3-torch 1.13 (str(tensor)).
#include "attn/tensor/format.hpp"

#include <gtest/gtest.h>

#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace {

using attn::Tensor;

TEST(FormatTensor, MatchesPyTorchsPrinting) {
  const Tensor<float, 2> v2({2, 2}, {-0.0739f, 0.0713f, -0.0748f, 0.0703f});
  EXPECT_EQ(attn::format_tensor(v2.view()),
            "tensor([[-0.0739,  0.0713],\n        [-0.0748,  0.0703]])");
  const Tensor<double, 3> batch({2, 2, 2}, {0.5, -1.25, 3, 4, 1, 2, 3, 4});
  EXPECT_EQ(attn::format_tensor(batch.view()),
            "tensor([[[ 0.5000, -1.2500],\n         [ 3.0000,  4.0000]],\n\n"
            "        [[ 1.0000,  2.0000],\n         [ 3.0000,  4.0000]]])");
  const Tensor<float, 2> mask({2, 3}, {2, 2, 0, 0, 2, 2});
  EXPECT_EQ(attn::format_tensor(mask.view()), "tensor([[2., 2., 0.],\n        [0., 2., 2.]])");
  const Tensor<float, 1> query({2}, {0.4306f, 1.4551f});
  EXPECT_EQ(attn::format_tensor(query.view()), "tensor([0.4306, 1.4551])");
  const Tensor<float, 3> whole({2, 1, 2}, {1, -2, 3, 4});
  EXPECT_EQ(attn::format_tensor(whole.view()), "tensor([[[ 1., -2.]],\n\n        [[ 3.,  4.]]])");
  const Tensor<float, 1> mixed({2}, {12.5f, -0.25f});
  EXPECT_EQ(attn::format_tensor(mixed.view()), "tensor([12.5000, -0.2500])");
}

// Token ids print as PyTorch's int64 tensors, and rows wrap at PyTorch's 80 columns (strings
// as python3-torch printed them).
TEST(FormatTensor, IntegersAndLongRowsAsPyTorch) {
  const Tensor<attn::Index, 2> ids(
      {1, 19}, {15496, 11, 314, 716, 11305, 28912, 7105, 3370, 49486, 15447, 31487, 38208, 41480,
                27402, 23531, 47839, 389, 17202, 26088});
  EXPECT_EQ(attn::format_tensor(ids.view()),
            "tensor([[15496,    11,   314,   716, 11305, 28912,  7105,  3370, 49486, 15447,\n"
            "         31487, 38208, 41480, 27402, 23531, 47839,   389, 17202, 26088]])");
  const Tensor<attn::Index, 1> signed_ids({2}, {-3, 12});
  EXPECT_EQ(attn::format_tensor(signed_ids.view()), "tensor([-3, 12])");
  Tensor<float, 1> sevenths({14});
  for (attn::Index i = 0; i < 14; ++i) sevenths(i) = static_cast<float>(i) / 7.0f;
  EXPECT_EQ(attn::format_tensor(sevenths.view()),
            "tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n"
            "        1.2857, 1.4286, 1.5714, 1.7143, 1.8571])");
}

TEST(FormatTensor, FollowsStrides) {
  const Tensor<float, 2> x({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(attn::format_tensor(attn::transpose(x.view(), 0, 1)),
            "tensor([[1., 4.],\n        [2., 5.],\n        [3., 6.]])");
}

}  // namespace
