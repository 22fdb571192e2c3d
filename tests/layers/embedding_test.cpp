// Embedding against nn.Embedding: lookup, and the gradient of sum(out * R) where a repeated id
// collects the sum of its rows' gradients.
#include "attn/layers/embedding.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "attn/io/safetensors.hpp"
#include "attn/state/state_dict.hpp"
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

// nn.Embedding's init is torch.randn's draws: torch.manual_seed(123); nn.Embedding(6, 4) and
// nn.Embedding(3, 4) (12 values: drawn one at a time), printed by Debian's python3-torch 1.13.
// Floats within 16 ulp (Generator::normal_fill: PyTorch's blocks of 16 use Sleef's log/sin/cos).
TEST(Embedding, SeededInitialisationIsTorchs) {
  const auto near = [](float actual, double expected) {
    return std::abs(actual - expected) <= 16 * 1.2e-7 * std::max(1.0, std::abs(expected));
  };
  const attn::Embedding<float> blocks(6, 4, attn::Generator(123));
  const double first[] = {0.3373701870441437,  -0.1777772158384323, -0.3035275936126709,
                          -0.5880118608474731, 0.3486051857471466,  0.6603409647941589};
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(near(blocks.weight().data()[i], first[i])) << i;
  EXPECT_TRUE(near(blocks.weight().data()[22], 1.831893801689148));
  EXPECT_TRUE(near(blocks.weight().data()[23], -0.3378387987613678));
  const attn::Embedding<float> one_at_a_time(3, 4, attn::Generator(123));
  const double serial[] = {-0.11146711558103561, 0.12036294490098953, -0.3696345090866089};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(near(one_at_a_time.weight().data()[i], serial[i])) << i;
}

// pos_emb(torch.arange(first, first + T)) added to every sequence, and its gradient: the sum
// over the batch into those rows. Rows of the table are 10 r + c, so each sum is checkable by hand.
TEST(Embedding, AddsPositionsToEverySequenceAndSumsTheirGradient) {
  attn::Embedding<double> pos_emb(5, 2);
  for (Index r = 0; r < 5; ++r) {
    for (Index c = 0; c < 2; ++c) pos_emb.weight()(r, c) = 10.0 * r + c;
  }
  attn::Tensor<double, 3> x({2, 3, 2}, {1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2});
  pos_emb.add_positions(x.view(), 1);  // rows 1, 2, 3
  const attn::Tensor<double, 3> expected({2, 3, 2},
                                         {11, 12, 21, 22, 31, 32, 12, 13, 22, 23, 32, 33});
  EXPECT_TRUE(all_close(x.view(), expected.view(), 0.0));

  const attn::Tensor<double, 3> grad({2, 3, 2}, {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60});
  pos_emb.add_positions_backward(grad.view(), 1);
  pos_emb.add_positions_backward(grad.view(), 1);  // accumulates
  const attn::Tensor<double, 2> expected_grad({5, 2}, {0, 0, 22, 44, 66, 88, 110, 132, 0, 0});
  EXPECT_TRUE(all_close(pos_emb.weight_grad().view(), expected_grad.view(), 0.0));

  ATTN_EXPECT_ERROR(pos_emb.add_positions(x.view(), 3), attn::IndexError,
                    {"Embedding::add_positions", "[3, 6)", "5 rows"});
  attn::Tensor<double, 3> wide({1, 1, 3});
  ATTN_EXPECT_ERROR(pos_emb.add_positions_backward(wide.view(), 0), attn::ShapeError,
                    {"Embedding::add_positions_backward", "embedding_dim (2)"});
}

}  // namespace
