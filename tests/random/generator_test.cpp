#include "attn/random/generator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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

// ---- Normal draws: torch.randn and Tensor.normal_, values printed by Debian's python3-torch 1.13
// --

// Float values within a few ulp: PyTorch's AVX2 build takes the blocks of 16's log, sin and cos
// from Sleef; glibc's differ by an ulp or two. 16 ulp of the value's magnitude (at least 1) is
// far below the distance between two different draws.
template <typename Scalar>
void expect_normals(attn::Generator& generator, std::vector<double> expected, double mean = 0,
                    double std = 1) {
  std::vector<Scalar> drawn(expected.size());
  generator.normal_fill<Scalar>(drawn.data(), static_cast<attn::Index>(drawn.size()),
                                static_cast<Scalar>(mean), static_cast<Scalar>(std));
  const double ulp = std::numeric_limits<Scalar>::epsilon();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(drawn[i], expected[i], 16 * ulp * std::max(1.0, std::abs(expected[i])))
        << "value " << i << " of " << expected.size();
  }
}

// Fewer than 16 values: one at a time, in double, the pair's second value kept for the next call.
TEST(Generator, NormalFillReproducesTorchRandnOneAtATime) {
  attn::Generator generator(123);
  expect_normals<float>(generator, {-0.11146711558103561, 0.12036294490098953, -0.3696345090866089,
                                    -0.2404179722070694, -1.1969243288040161});
  expect_normals<float>(generator, {0.20926935970783234, -0.9723550081253052,
                                    -0.755045473575592});  // torch.randn(3) next
  attn::Generator again(123);                              // torch.randn(5, dtype=torch.float64)
  expect_normals<double>(again, {-0.11146711634581082, 0.12036294405744884, -0.36963450886574944,
                                 -0.24041797675874255, -1.1969243846077398});
  generator.manual_seed(123);  // forgets the kept value, as torch.manual_seed does
  expect_normals<float>(generator, {-0.11146711558103561});
}

// 16 or more: uniforms of the dtype first, Box-Muller per block of 16, the tail redrawn.
TEST(Generator, NormalFillReproducesTorchRandnInBlocks) {
  attn::Generator generator(123);
  expect_normals<float>(
      generator,
      {0.3373701870441437,   -0.1777772158384323,  -0.3035275936126709,  -0.5880118608474731,
       0.3486051857471466,   0.6603409647941589,   -0.21963761746883392, -0.3791698217391968,
       0.7671070694923401,   -1.1925020217895508,  0.6983519196510315,   -1.409722924232483,
       0.17937961220741272,  1.8951480388641357,   0.4954463839530945,   0.26919856667518616,
       -0.07702023535966873, -1.0204719305038452,  -0.16895627975463867, 0.9177646040916443,
       1.5809695720672607,   -0.9343459010124207,  -0.4991441071033478,  -1.0866526365280151,
       0.9624210000038147,   0.2492084950208664,   -0.48450207710266113, -2.092914342880249,
       -0.819909930229187,   -0.09350743144750595, 0.2662147283554077,   -0.585035502910614,
       -0.34303799271583557, -0.6821473836898804,  -0.9886894226074219,  -1.7018303871154785,
       -0.7498023509979248});
  generator.manual_seed(123);
  expect_normals<double>(
      generator,
      {0.9097575322111796,  0.1537571881236119,  0.6343517383098118,    0.3665487366903596,
       0.37665067350806597, 0.22516456274114774, 0.4647596049729213,    -1.0580022026417297,
       -0.304811494629474,  0.0571916377536726,  -1.1787689036401106,   0.24509691414600168,
       1.0663793020458803,  1.1940362498157249,  1.2814664862959024,    0.6294435988587436,
       -1.5168904193577464, -0.7768207765886559, 1.2984201811768417,    -0.6320258915933381,
       -0.7536409539336731, 1.340931707395447,   -0.037444442123094085, -1.515522214971291,
       1.630935038049173,   0.45850674470890246, 1.7165564390018355,    -0.7307151069594964,
       0.6114383082871996,  -0.6045406412613581, 1.4284144300495805,    0.7550054277840386,
       -1.1004650038575967, 1.6964039212792126,  0.5281873329520408,    1.0614402826587597,
       0.2744083725080653});
}

// Tensor.normal_(2, 0.5): torch.manual_seed(7); torch.empty(n).normal_(2.0, 0.5), n = 7 and 40.
TEST(Generator, NormalFillWithMeanAndStdReproducesTorchNormal) {
  attn::Generator generator(7);
  expect_normals<float>(
      generator,
      {1.9266024827957153, 2.393070697784424, 2.4734108448028564, 1.4428279399871826,
       2.845395088195801, 1.5525860786437988, 1.8221875429153442},
      2.0, 0.5);
  generator.manual_seed(7);
  expect_normals<float>(
      generator, {1.5899326801300049, 2.1978156566619873, 2.4494543075561523, 1.305798053741455,
                  1.9165019989013672, 2.1425750255584717, 1.6794542074203491, 1.5531723499298096,
                  2.4632716178894043, 1.7322438955307007, 1.4201397895812988, 1.7699214220046997,
                  2.354269504547119,  2.506377696990967,  2.1151983737945557, 2.5450825691223145,
                  1.2086677551269531, 1.8377166986465454, 2.963184118270874,  1.8349940776824951,
                  2.099222421646118,  2.39103627204895,   2.5195538997650146, 1.637744665145874,
                  1.932281494140625,  2.37355899810791,   2.305907964706421,  2.933891773223877,
                  3.2558014392852783, 1.3726074695587158, 2.4082281589508057, 1.467300534248352,
                  1.18148934841156,   2.0788559913635254, 2.1978704929351807, 1.3161301612854004,
                  1.9496328830718994, 2.1185073852539062, 2.316340923309326,  1.9541614055633545},
      2.0, 0.5);
}

}  // namespace
