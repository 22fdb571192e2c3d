#include "attn/kernels/dropout.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "attn/tensor/tensor.hpp"
#include "support/expect_error.hpp"

namespace {

TEST(Dropout, EvalModeIsTheIdentity) {
  attn::Tensor<float, 2> values({6, 6}, 1.0f);
  attn::Generator generator(123);
  attn::dropout(values.view(), 0.5f, /*training=*/false, generator);
  for (attn::Index i = 0; i < values.numel(); ++i) EXPECT_EQ(values.data()[i], 1.0f);
}

TEST(Dropout, HalfZeroedAndTheRestDoubled) {
  attn::Tensor<float, 2> values({100, 100}, 1.0f);
  attn::Generator generator(123);
  attn::dropout(values.view(), 0.5f, /*training=*/true, generator);
  attn::Index zeros = 0;
  for (attn::Index i = 0; i < values.numel(); ++i) {
    const float value = values.data()[i];
    EXPECT_TRUE(value == 0.0f || value == 2.0f) << value;
    zeros += value == 0.0f;
  }
  // 10000 fair coin flips: 5000 +- 4 standard deviations (50 each).
  EXPECT_NEAR(static_cast<double>(zeros), 5000.0, 200.0);
}

TEST(Dropout, SameSeedSameMask) {
  attn::Tensor<double, 2> first({6, 6}, 1.0), second({6, 6}, 1.0);
  attn::Generator a(7), b(7);
  attn::dropout(first.view(), 0.3, true, a);
  attn::dropout(second.view(), 0.3, true, b);
  for (attn::Index i = 0; i < first.numel(); ++i) EXPECT_EQ(first.data()[i], second.data()[i]);
}

TEST(Dropout, ProbabilityOutsideZeroOneIsRefused) {
  attn::Tensor<float, 2> values({2, 2});
  attn::Generator generator;
  ATTN_EXPECT_ERROR(attn::dropout(values.view(), 1.0f, true, generator), std::invalid_argument,
                    {"dropout (1)", "[0, 1)"});
  ATTN_EXPECT_ERROR(attn::dropout(values.view(), -0.1f, true, generator), std::invalid_argument,
                    {"dropout (-0.1)"});
  ATTN_EXPECT_ERROR(attn::dropout(values.view(), NAN, false, generator), std::invalid_argument,
                    {"dropout (nan)"});
}

}  // namespace
