// The tolerance of a comparison of results that carry rounding error, relative to a problem scale
// (support/normwise.hpp): a small multiple of the type's machine epsilon times a size factor,
//     rounding_tolerance<Scalar>(logits, length) = c eps (logits + sqrt(length)):
//  - sqrt(length): a sum of n rounded terms is off by about sqrt(n) eps times the sum of their
//    magnitudes (n eps at worst; Higham and Mary, SIAM J. Sci. Comput. 2019, for why sqrt(n) is
//    what one sees), n the longest reduction of the computation;
//  - logits: a logit holds an absolute error of about eps |logit|, which exp turns into a relative
//    error of its softmax weight, so the largest |logit| the problem allows counts like a length;
//  - c = 4 by default; each comparison that needs more says why.
// No GoogleTest here: the differential fuzzer (fuzz/) uses it too.
#ifndef ATTN_TESTS_SUPPORT_ROUNDING_HPP
#define ATTN_TESTS_SUPPORT_ROUNDING_HPP

#include <algorithm>
#include <attn/config.hpp>
#include <cmath>
#include <limits>

namespace attn_test {

template <typename Scalar>
constexpr double epsilon() {
  return static_cast<double>(std::numeric_limits<Scalar>::epsilon());
}

template <typename Scalar>
double rounding_tolerance(double logits, attn::Index length, double c = 4) {
  const double n = static_cast<double>(std::max<attn::Index>(length, 1));
  return c * epsilon<Scalar>() * (logits + std::sqrt(n));
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_ROUNDING_HPP
