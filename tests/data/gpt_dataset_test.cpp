// The data pipeline of the chapter-3 notebook (ch03 multihead-attention.ipynb): GPTDatasetV1's
// windows against the book's loop (literal cases, and PyTorch's dataset on the text's ids in
// notebook.io.safetensors), DataLoader's batches, drop_last and shuffled order against torch's
// DataLoader(shuffle=True, generator=torch.Generator().manual_seed(s)), and the notebook end to
// end: the first shuffled batch, the seeded embeddings, the wrapper with out_proj and
// MultiHeadAttention against PyTorch (tests/fixtures/generate_notebook.py; the ids come from
// js-tiktoken, so this test needs no tokenizer).
#include "attn/data/gpt_dataset.hpp"
#include "attn/data/data_loader.hpp"
#include "attn/random/randperm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/layer_fixture.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;

std::vector<Index> dataset_test_iota(Index n, Index first = 0) {
  std::vector<Index> ids(static_cast<std::size_t>(n));
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

const attn::io::SafetensorsFile& notebook_fixture() {
  static const attn::io::SafetensorsFile file = attn_test::load_io("notebook");
  return file;
}

template <int Rank>
attn::Tensor<Index, Rank> notebook_ids(const std::string& name) {
  return attn::io::to_tensor<Index, Rank>(notebook_fixture(), name, "notebook.io.safetensors");
}

std::vector<Index> notebook_token_ids() {
  const auto ids = notebook_ids<1>("ids");
  return std::vector<Index>(ids.data(), ids.data() + ids.numel());
}

// Exact equality of two id views, any strides, reporting the first difference.
::testing::AssertionResult same_ids(const attn::TensorView<const Index, 2>& actual,
                                    const attn::TensorView<const Index, 2>& expected) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << "shape " << attn::to_string(actual.shape())
                                         << " != expected " << attn::to_string(expected.shape());
  }
  for (Index i = 0; i < actual.size(0); ++i) {
    for (Index j = 0; j < actual.size(1); ++j) {
      if (actual(i, j) != expected(i, j)) {
        return ::testing::AssertionFailure() << "at (" << i << ", " << j << "): " << actual(i, j)
                                             << " != expected " << expected(i, j);
      }
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<Index> ids_of(const attn::TensorView<const Index, 1>& view) {
  std::vector<Index> ids;
  for (Index i = 0; i < view.size(0); ++i) ids.push_back(view(i));
  return ids;
}

// ---- GPTDatasetV1
// --------------------------------------------------------------------------------

// for i in range(0, len(ids) - max_length, stride): ids[i:i+L], ids[i+1:i+L+1], by hand.
TEST(GPTDatasetV1, BookWindowsByHand) {
  const attn::GPTDatasetV1 data(dataset_test_iota(10, 100), 4, 4);  // range(0, 6, 4): 0, 4
  ASSERT_EQ(data.size(), 2);
  EXPECT_EQ(ids_of(data.input(0)), (std::vector<Index>{100, 101, 102, 103}));
  EXPECT_EQ(ids_of(data.target(0)), (std::vector<Index>{101, 102, 103, 104}));
  EXPECT_EQ(ids_of(data.input(1)), (std::vector<Index>{104, 105, 106, 107}));
  EXPECT_EQ(ids_of(data.target(1)), (std::vector<Index>{105, 106, 107, 108}));

  const attn::GPTDatasetV1 overlapping(dataset_test_iota(10), 4, 1);  // range(0, 6): 6 windows
  ASSERT_EQ(overlapping.size(), 6);
  EXPECT_EQ(ids_of(overlapping.input(5)), (std::vector<Index>{5, 6, 7, 8}));
  EXPECT_EQ(ids_of(overlapping.target(5)), (std::vector<Index>{6, 7, 8, 9}));

  const attn::GPTDatasetV1 gaps(dataset_test_iota(10), 3, 5);  // range(0, 7, 5): 0, 5
  ASSERT_EQ(gaps.size(), 2);
  EXPECT_EQ(ids_of(gaps.input(1)), (std::vector<Index>{5, 6, 7}));
  EXPECT_EQ(ids_of(gaps.target(1)), (std::vector<Index>{6, 7, 8}));

  // Just enough ids: max_length + 1 gives one window; a stride past the end still gives one.
  EXPECT_EQ(attn::GPTDatasetV1(dataset_test_iota(5), 4, 1).size(), 1);
  EXPECT_EQ(attn::GPTDatasetV1(dataset_test_iota(5), 4, 100).size(), 1);
  EXPECT_EQ(attn::GPTDatasetV1(dataset_test_iota(11), 4, 3).size(), 3);  // range(0, 7, 3)
}

// The windows are strided views of the one id buffer: no copy.
TEST(GPTDatasetV1, WindowsAreViewsOfOneBuffer) {
  const attn::GPTDatasetV1 data(dataset_test_iota(20), 4, 3);
  const auto inputs = data.inputs();
  const auto targets = data.targets();
  EXPECT_EQ(inputs.shape(), (attn::Shape<2>{6, 4}));  // range(0, 16, 3): 0, 3, ..., 15
  EXPECT_EQ(inputs.strides(), (attn::Shape<2>{3, 1}));
  EXPECT_EQ(targets.strides(), (attn::Shape<2>{3, 1}));
  EXPECT_EQ(inputs.data(), data.token_ids().data());
  EXPECT_EQ(targets.data(), data.token_ids().data() + 1);
  EXPECT_EQ(data.input(2).data(), data.token_ids().data() + 6);
  EXPECT_EQ(data.target(5).data(), data.token_ids().data() + 16);
  EXPECT_EQ(targets(5, 3), 19);  // the last id is the last target

  // Moving keeps the buffer (views stay valid); a copy has its own.
  const Index* buffer = data.token_ids().data();
  attn::GPTDatasetV1 moved_from(dataset_test_iota(20), 4, 3);
  const Index* before = moved_from.inputs().data();
  const attn::GPTDatasetV1 moved(std::move(moved_from));
  EXPECT_EQ(moved.inputs().data(), before);
  const attn::GPTDatasetV1 copy(data);  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_NE(copy.inputs().data(), buffer);
  EXPECT_TRUE(same_ids(copy.inputs(), data.inputs()));
}

// PyTorch's GPTDatasetV1 (the book's class) on the first 40 ids of the text.
TEST(GPTDatasetV1, MatchesPyTorchDataset) {
  const auto ids = notebook_token_ids();
  const std::vector<Index> first40(ids.begin(), ids.begin() + 40);
  for (const auto& [length, stride] : {std::pair<Index, Index>{4, 4}, {6, 2}, {3, 5}, {1, 1}}) {
    const std::string name =
        "windows." + std::to_string(length) + "_" + std::to_string(stride) + ".";
    SCOPED_TRACE(name);
    const attn::GPTDatasetV1 data(first40, length, stride);
    const auto inputs = notebook_ids<2>(name + "inputs");
    const auto targets = notebook_ids<2>(name + "targets");
    EXPECT_TRUE(same_ids(data.inputs(), inputs.view()));
    EXPECT_TRUE(same_ids(data.targets(), targets.view()));
  }
  EXPECT_EQ(attn::GPTDatasetV1(ids, 4, 4).size(),
            attn_test::metadata_int(notebook_fixture(), "windows"));
}

TEST(GPTDatasetV1, BadArgumentsNameTheirValues) {
  ATTN_EXPECT_ERROR(attn::GPTDatasetV1(dataset_test_iota(10), 0, 1), std::invalid_argument,
                    {"max_length (0) must be positive"});
  ATTN_EXPECT_ERROR(attn::GPTDatasetV1(dataset_test_iota(10), -3, 1), std::invalid_argument,
                    {"max_length (-3)"});
  ATTN_EXPECT_ERROR(attn::GPTDatasetV1(dataset_test_iota(10), 4, 0), std::invalid_argument,
                    {"stride (0) must be positive"});
  ATTN_EXPECT_ERROR(attn::GPTDatasetV1(dataset_test_iota(4), 4, 1), std::invalid_argument,
                    {"4 token ids", "max_length (4)", "(5)"});
  ATTN_EXPECT_ERROR(attn::GPTDatasetV1({}, 1, 1), std::invalid_argument, {"0 token ids"});
  const attn::GPTDatasetV1 data(dataset_test_iota(10), 4, 4);
  ATTN_EXPECT_ERROR(data.input(2), std::out_of_range, {"index 2", "2 windows"});
  ATTN_EXPECT_ERROR(data.input(-1), std::out_of_range, {"index -1"});
  ATTN_EXPECT_ERROR(data.target(2), attn::IndexError, {"target", "index 2"});
}

// ---- DataLoader
// ----------------------------------------------------------------------------------

// In order: batches of consecutive windows, each a view into the ids (strides (stride, 1)); the
// last one short unless drop_last drops it; len(loader) as torch's.
TEST(DataLoader, InOrderBatchesAreViews) {
  const attn::GPTDatasetV1 data(notebook_token_ids(), 4, 4);  // 174 windows
  attn::DataLoader loader(data, 8);
  EXPECT_EQ(loader.size(), attn_test::metadata_int(notebook_fixture(), "batches"));
  EXPECT_EQ(loader.size(), 22);
  Index seen = 0, batches = 0;
  for (const auto& [inputs, targets] : loader) {
    const Index count = inputs.size(0);
    EXPECT_EQ(count, batches + 1 < loader.size() ? 8 : 174 - 21 * 8);
    EXPECT_EQ(inputs.strides(), (attn::Shape<2>{4, 1}));
    EXPECT_EQ(inputs.data(), data.token_ids().data() + seen * 4);
    EXPECT_EQ(targets.data(), inputs.data() + 1);
    EXPECT_TRUE(same_ids(inputs, attn::slice(data.inputs(), 0, seen, seen + count)));
    EXPECT_TRUE(same_ids(targets, attn::slice(data.targets(), 0, seen, seen + count)));
    seen += count;
    ++batches;
  }
  EXPECT_EQ(seen, data.size());
  EXPECT_EQ(batches, 22);
  EXPECT_FALSE(loader.batch(0).owns_data());

  attn::DataLoader dropping(data, 8, false, /*drop_last=*/true);
  EXPECT_EQ(dropping.size(), attn_test::metadata_int(notebook_fixture(), "batches_drop_last"));
  batches = 0;
  for (const auto& batch : dropping) {
    EXPECT_EQ(batch.size(), 8);
    ++batches;
  }
  EXPECT_EQ(batches, 21);
}

TEST(DataLoader, BatchLargerThanTheDataset) {
  const attn::GPTDatasetV1 data(dataset_test_iota(10), 2, 2);  // 4 windows
  attn::DataLoader loader(data, 5);
  ASSERT_EQ(loader.size(), 1);
  EXPECT_EQ((*loader.begin()).size(), 4);
  attn::DataLoader dropping(data, 5, true, true);
  EXPECT_EQ(dropping.size(), 0);
  EXPECT_EQ(dropping.begin(), dropping.end());
  // An exact multiple loses nothing to drop_last.
  EXPECT_EQ(attn::DataLoader(data, 2, false, true).size(), 2);
  EXPECT_EQ(attn::DataLoader(data, 3, false, true).size(), 1);
  EXPECT_EQ(attn::DataLoader(data, 3).size(), 2);
}

// torch's order: epoch after epoch, the first batch of a loader over n one-id windows (window i
// holds id i) is DataLoader(range(n), batch_size=n, shuffle=True, generator=manual_seed(seed)):
// the base seed drawn first, then randperm(n).
TEST(DataLoader, ShuffledOrderMatchesTorch) {
  for (const auto& [n, seed] :
       {std::pair<Index, Index>{174, 123}, {10, 123}, {7, 5}, {1, 3}, {250, 42}}) {
    const std::string name = "order." + std::to_string(n) + "_" + std::to_string(seed);
    SCOPED_TRACE(name);
    const auto expected = notebook_ids<1>(name);
    ASSERT_EQ(expected.numel(), 2 * n);
    const attn::GPTDatasetV1 windows(dataset_test_iota(n + 1), 1, 1);
    attn::DataLoader loader(windows, n, true, false,
                            attn::Generator(static_cast<std::uint64_t>(seed)));
    for (Index epoch = 0; epoch < 2; ++epoch) {
      const attn::Batch batch = *loader.begin();
      ASSERT_EQ(batch.size(), n);
      for (Index i = 0; i < n; ++i) {
        ASSERT_EQ(batch.inputs()(i, 0), expected(epoch * n + i)) << "epoch " << epoch << ", " << i;
      }
      EXPECT_EQ(loader.order(),
                std::vector<Index>(expected.data() + epoch * n, expected.data() + (epoch + 1) * n));
    }
  }
}

// Shuffled batches gather the epoch's windows into owned, contiguous rows that outlive the loop.
TEST(DataLoader, ShuffledBatchesGatherTheEpochOrder) {
  const attn::GPTDatasetV1 data(notebook_token_ids(), 4, 4);
  attn::DataLoader loader(data, 8, /*shuffle=*/true, /*drop_last=*/true, attn::Generator(123));
  std::vector<attn::Batch> kept;
  for (auto batch : loader) kept.push_back(std::move(batch));
  ASSERT_EQ(static_cast<Index>(kept.size()), 21);
  const auto order = loader.order();
  std::vector<bool> visited(static_cast<std::size_t>(data.size()), false);
  for (std::size_t b = 0; b < kept.size(); ++b) {
    const auto& [inputs, targets] = kept[b];
    EXPECT_TRUE(kept[b].owns_data());
    EXPECT_TRUE(inputs.is_contiguous());
    ASSERT_EQ(inputs.shape(), (attn::Shape<2>{8, 4}));
    for (Index j = 0; j < 8; ++j) {
      const Index window = order[b * 8 + static_cast<std::size_t>(j)];
      visited[static_cast<std::size_t>(window)] = true;
      EXPECT_EQ(ids_of(attn::select(inputs, 0, j)), ids_of(data.input(window)));
      EXPECT_EQ(ids_of(attn::select(targets, 0, j)), ids_of(data.target(window)));
    }
  }
  // drop_last dropped the last 174 - 168 = 6 windows of the order, nothing else.
  EXPECT_EQ(std::count(visited.begin(), visited.end(), true), 168);
  // A copy of a batch shares its storage.
  const attn::Batch copy = kept.front();
  kept.clear();
  EXPECT_EQ(copy.size(), 8);
  EXPECT_EQ(copy.inputs()(0, 0), data.input(order[0])(0));
}

TEST(DataLoader, RandpermIsAPermutation) {
  attn::Generator generator(9);
  EXPECT_TRUE(attn::randperm(0, generator).empty());
  EXPECT_EQ(attn::randperm(1, generator), std::vector<Index>{0});
  auto permutation = attn::randperm(1000, generator);
  std::sort(permutation.begin(), permutation.end());
  EXPECT_EQ(permutation, dataset_test_iota(1000));
  ATTN_EXPECT_ERROR(attn::randperm(-2, generator), std::invalid_argument, {"n (-2)"});
}

TEST(DataLoader, BadArgumentsNameTheirValues) {
  const attn::GPTDatasetV1 data(dataset_test_iota(10), 2, 2);
  ATTN_EXPECT_ERROR(attn::DataLoader(data, 0), std::invalid_argument,
                    {"batch_size (0) must be positive"});
  attn::DataLoader loader(data, 3);
  ATTN_EXPECT_ERROR(loader.batch(2), std::out_of_range, {"index 2", "2 batches"});
  attn::DataLoader shuffled(data, 3, true);
  ATTN_EXPECT_ERROR(shuffled.batch(0), attn::IndexError, {"before begin()"});
}

// ---- The notebook, end to end ---------------------------------------------------------------

// The first batch of the notebook's loader: GPTDatasetV1(ids, 4, 4), batch_size 8, shuffled
// (the notebook's create_dataloader default) with the generator seeded 123.
attn::Batch notebook_first_batch() {
  static const attn::GPTDatasetV1 data(notebook_token_ids(), 4, 4);
  attn::DataLoader loader(data, 8, true, false, attn::Generator(123));
  return *loader.begin();
}

// token_embedding_layer(x) + pos_embedding_layer(arange(4)), both drawn from one Generator(123)
// as nn.Embedding(50257, 256) and nn.Embedding(1024, 256) after torch.manual_seed(123).
const attn::Tensor<float, 3>& notebook_input_embeddings() {
  static const attn::Tensor<float, 3> embeddings = [] {
    attn::Generator generator(123);
    const attn::Embedding<float> token_embedding(50257, 256, generator);
    const attn::Embedding<float> pos_embedding(1024, 256, generator);
    const auto batch = notebook_first_batch();
    auto x = token_embedding.forward(batch.inputs());
    const attn::Tensor<Index, 2> positions({1, 4}, {0, 1, 2, 3});
    const auto pos = pos_embedding.forward(positions.view());
    for (Index b = 0; b < x.size(0); ++b) {
      for (Index t = 0; t < 4; ++t) {
        for (Index c = 0; c < 256; ++c) x(b, t, c) += pos(0, t, c);
      }
    }
    return x;
  }();
  return embeddings;
}

// The fixture's slice t[:, :, :8], ||t||_F and per-row norms against ours, normwise against
// `scale` with `tolerance`: a slice, a norm and the row norms each differ by at most ||ours -
// theirs||_F, so one bound serves all three.
void expect_matches_notebook(const attn::Tensor<float, 3>& ours, const std::string& name,
                             double scale, double tolerance) {
  SCOPED_TRACE(name);
  const auto& file = notebook_fixture();
  const auto slice = attn_test::fixture_tensor<float, 3>(file, name + ".slice");
  const auto norm = attn_test::fixture_tensor<float, 1>(file, name + ".norm");
  const auto row_norms = attn_test::fixture_tensor<float, 2>(file, name + ".row_norms");
  ASSERT_EQ(ours.shape(), (attn::Shape<3>{8, 4, 256}));
  EXPECT_TRUE(attn_test::close_normwise(attn::slice(ours.view(), 2, 0, 8), slice.view(), scale,
                                        tolerance, name + "[:, :, :8]"));
  EXPECT_TRUE(attn_test::close_normwise(std::vector<double>{attn_test::frobenius(ours)},
                                        std::vector<double>{norm(0)}, scale, tolerance,
                                        name + " norm"));
  EXPECT_TRUE(attn_test::close_normwise(attn_test::row_norms(ours), attn_test::values_of(row_norms),
                                        scale, tolerance, name + " row norms"));
}

TEST(NotebookPipeline, FirstShuffledBatchMatchesPyTorch) {
  const auto batch = notebook_first_batch();
  EXPECT_TRUE(same_ids(batch.inputs(), notebook_ids<2>("batch.inputs").view()));
  EXPECT_TRUE(same_ids(batch.targets(), notebook_ids<2>("batch.targets").view()));
  // The first row the example prints, by hand from the fixture's generation.
  EXPECT_EQ(ids_of(attn::select(batch.inputs(), 0, 0)),
            (std::vector<Index>{13, 1550, 7374, 12513}));
}

// nn.Embedding's init is torch.randn's draws; in float PyTorch's vectorised log/sin/cos (Sleef)
// differ from libm by a few ulp, so each value is within a few eps of PyTorch's: 8 eps of the
// fixture's own norm.
TEST(NotebookPipeline, InputEmbeddingsMatchPyTorch) {
  const auto& embeddings = notebook_input_embeddings();
  const double norm =
      attn_test::fixture_tensor<float, 1>(notebook_fixture(), "input_embeddings.norm")(0);
  expect_matches_notebook(embeddings, "input_embeddings", norm, 8 * attn_test::epsilon<float>());
}

// Variant A: torch.manual_seed(123); MultiHeadAttentionWrapper(256, 128, 4, 0.0, 2) with the
// notebook's out_proj. Variant B: torch.manual_seed(123); MultiHeadAttention(256, 256, 4, 0.0,
// num_heads=2). Scales and tolerances are layer_fixture.hpp's (layer_scales of the seeded
// layer's state_dict on these inputs: bounds on the output, rounding_tolerance with c = 8).
TEST(NotebookPipeline, ContextVectorsMatchPyTorch) {
  const auto& x = notebook_input_embeddings();
  attn::MultiHeadAttentionWrapper<float>::Options options;
  options.out_proj = true;
  const attn::MultiHeadAttentionWrapper<float> wrapper(256, 128, 4, 0.0f, 2, options,
                                                       attn::Generator(123));
  const auto context_a = wrapper.forward(x.view());
  const auto scales_a = attn_test::layer_scales(attn::state_dict(wrapper), x, nullptr);
  expect_matches_notebook(context_a, "context_a", scales_a.out, scales_a.tolerance<float>());

  const attn::MultiHeadAttention<float> mha(256, 256, 4, 0.0f, 2, false, attn::Generator(123));
  const auto context_b = mha.forward(x.view());
  const auto scales_b = attn_test::layer_scales(attn::state_dict(mha), x, nullptr, 2);
  expect_matches_notebook(context_b, "context_b", scales_b.out, scales_b.tolerance<float>());
}

}  // namespace
