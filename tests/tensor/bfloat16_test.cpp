// attn/tensor/bfloat16.hpp rounds to bfloat16 as PyTorch does, and widens exactly.
#include "attn/tensor/bfloat16.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace {

using attn::round_to_bfloat16;

// torch.tensor([...], dtype=torch.float32).bfloat16().float() gives these (PyTorch 1.13).
TEST(BFloat16, RoundsAsPyTorchDoes) {
  EXPECT_EQ(round_to_bfloat16(1.00390625f), 1.0f);       // halfway: to the even mantissa
  EXPECT_EQ(round_to_bfloat16(1.01171875f), 1.015625f);  // halfway: up, to the even one
  EXPECT_EQ(round_to_bfloat16(3.14159274f), 3.140625f);  // below halfway: down
  EXPECT_EQ(round_to_bfloat16(-0.1f), -0.10009765625f);  // above halfway: away from 0
  EXPECT_EQ(round_to_bfloat16(-65504.0f), -65536.0f);
  EXPECT_EQ(round_to_bfloat16(std::numeric_limits<float>::max()),
            std::numeric_limits<float>::infinity());  // past bfloat16's largest finite value
  EXPECT_EQ(round_to_bfloat16(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(round_to_bfloat16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(round_to_bfloat16(-0.1), -0.10009765625);  // double: through float, as PyTorch
}

}  // namespace
