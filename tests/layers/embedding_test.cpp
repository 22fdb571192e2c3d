// Embedding against nn.Embedding: lookup, and the gradient of sum(out * R) where a repeated id
// collects the sum of its rows' gradients.
#include "attn/layers/embedding.hpp"

#include <gtest/gtest.h>

#include "attn/io/safetensors.hpp"
#include "attn/layers/state_dict.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn_test::all_close;
using attn_test::fixture_tensor;

attn::Embedding<double> fixture_embedding() {
  attn::Embedding<double> embedding(7, 4);
  attn::load_state_dict(
      embedding, attn::io::to_state_dict<double>(attn_test::read_fixture("embedding.safetensors")));
  return embedding;
}

TEST(Embedding, ForwardAndBackwardMatchPyTorch) {
  const auto io = attn_test::load_io("embedding");
  const auto ids = attn_test::fixture_indices<2>(io, "ids");
  auto embedding = fixture_embedding();
  const auto out = embedding.forward(ids.view());
  EXPECT_TRUE(all_close(out.view(), fixture_tensor<double, 3>(io, "out").view(), 0.0));
  const auto R = fixture_tensor<double, 3>(io, "R");
  embedding.backward(ids.view(), R.view());
  // Each row of the gradient sums the rows of R with its id: against sum_n |R_n|, tolerance 4 eps
  // sqrt(tokens).
  EXPECT_TRUE(attn_test::close_normwise(
      embedding.weight_grad(), fixture_tensor<double, 2>(io, "grad.weight"),
      attn_test::sum_row_norms(R), attn_test::rounding_tolerance<double>(0, ids.numel())));
}

TEST(Embedding, BackwardAccumulates) {
  const auto io = attn_test::load_io("embedding");
  const auto ids = attn_test::fixture_indices<2>(io, "ids");
  const auto R = fixture_tensor<double, 3>(io, "R");
  auto embedding = fixture_embedding();
  embedding.backward(ids.view(), R.view());
  embedding.backward(ids.view(), R.view());
  auto twice = fixture_tensor<double, 2>(io, "grad.weight");
  for (Index i = 0; i < twice.numel(); ++i) twice.data()[i] *= 2;
  EXPECT_TRUE(attn_test::close_normwise(embedding.weight_grad(), twice,
                                        2 * attn_test::sum_row_norms(R),
                                        attn_test::rounding_tolerance<double>(0, 2 * ids.numel())));
  attn::zero_grad(embedding);
  EXPECT_EQ(as_matrix(embedding.weight_grad().view()).cwiseAbs().maxCoeff(), 0.0);
}

TEST(Embedding, StateDictNamesAsPyTorch) {
  attn::Embedding<float> embedding(5, 3);
  const auto dict = attn::state_dict(embedding);
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_EQ(dict.at("weight").shape, (std::vector<Index>{5, 3}));
}

TEST(Embedding, RejectsBadInput) {
  ATTN_EXPECT_ERROR(attn::Embedding<float>(0, 3), std::invalid_argument, {"num_embeddings", "0"});
  ATTN_EXPECT_ERROR(attn::Embedding<float>(4, -1), std::invalid_argument, {"embedding_dim", "-1"});
  attn::Embedding<float> embedding(4, 2);
  const attn::Tensor<Index, 2> bad({1, 3}, {0, 4, 1});
  ATTN_EXPECT_ERROR(embedding.forward(bad.view()), std::out_of_range, {"id 4", "[0, 4)"});
  const attn::Tensor<Index, 2> negative({1, 1}, {-1});
  ATTN_EXPECT_ERROR(embedding.forward(negative.view()), std::out_of_range, {"id -1"});
  const attn::Tensor<Index, 2> ids({1, 2}, {0, 1});
  const attn::Tensor<float, 3> wrong({1, 2, 3});
  ATTN_EXPECT_ERROR(embedding.backward(ids.view(), wrong.view()), std::invalid_argument,
                    {"grad_out", "(1, 2, 3)", "(1, 2, 2)"});
}

TEST(Embedding, ZeroTokensGiveAnEmptyOutput) {
  attn::Embedding<float> embedding(4, 2);
  const attn::Tensor<Index, 2> ids({3, 0});
  EXPECT_EQ(embedding.forward(ids.view()).shape(), (attn::Shape<3>{3, 0, 2}));
}

}  // namespace
