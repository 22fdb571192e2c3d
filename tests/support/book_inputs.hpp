// The book's six-token input, "Your journey starts with one step" (chapter 3, section 3.3).
#ifndef ATTN_TESTS_SUPPORT_BOOK_INPUTS_HPP
#define ATTN_TESTS_SUPPORT_BOOK_INPUTS_HPP

#include <attn/tensor/tensor.hpp>

namespace attn_test {

inline attn::Tensor<float, 2> book_inputs() {
  return attn::Tensor<float, 2>({6, 3}, {0.43f, 0.15f, 0.89f,    // Your
                                         0.55f, 0.87f, 0.66f,    // journey
                                         0.57f, 0.85f, 0.64f,    // starts
                                         0.22f, 0.58f, 0.33f,    // with
                                         0.77f, 0.25f, 0.10f,    // one
                                         0.05f, 0.80f, 0.55f});  // step
}

/// The book's batch of two copies of the input, (2, 6, 3).
inline attn::Tensor<float, 3> book_batch() {
  const auto inputs = book_inputs();
  attn::Tensor<float, 3> batch({2, 6, 3});
  for (attn::Index i = 0; i < inputs.numel(); ++i) {
    batch.data()[i] = batch.data()[i + inputs.numel()] = inputs.data()[i];
  }
  return batch;
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_BOOK_INPUTS_HPP
