#include "attn/random/generator.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace {

// Reference values printed by Debian's python3-torch 1.13:
//   torch.manual_seed(123); torch.rand(4)
//   torch.manual_seed(123); torch.rand(2, dtype=torch.float64)
TEST(Generator, ReproducesTorchRandFloat) {
  attn::Generator generator(123);
  const float expected[] = {0.29611194133758545f, 0.516562283039093f, 0.2516707181930542f,
                            0.6885567903518677f};
  for (float value : expected) EXPECT_EQ(generator.uniform<float>(), value);
}

TEST(Generator, ReproducesTorchRandDouble) {
  attn::Generator generator(123);
  EXPECT_EQ(generator.uniform<double>(), 0.368895870664273);
  EXPECT_EQ(generator.uniform<double>(), 0.013365949855291825);
}

TEST(Generator, ManualSeedRestartsTheSequence) {
  attn::Generator generator(5);
  const auto first = generator.next_u32();
  generator.next_u32();
  generator.manual_seed(5);
  EXPECT_EQ(generator.next_u32(), first);
}

TEST(Generator, UniformRangeIsAffine) {
  // nn.Linear(3, 2) after manual_seed(123): weight[0][0] = -0.23542964458465576 (PyTorch).
  attn::Generator generator(123);
  const float bound = 1.0f / std::sqrt(3.0f);
  // The affine map of a 24-bit draw onto [-bound, bound) rounds twice, each time by at most
  // eps / 2 of the range's scale, bound: a wrong draw or range is off by O(bound).
  EXPECT_NEAR(generator.uniform<float>(-bound, bound), -0.23542964458465576f,
              2 * std::numeric_limits<float>::epsilon() * bound);
}

}  // namespace
