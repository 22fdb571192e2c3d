// The exact merge of attention partials: keys split into uneven chunks, each chunk's partial
// computed with attention_partial, merged with merge_attention_partials, against one pass of the
// shared kernel over every key (and against PyTorch's fixtures), in float and double; chunks
// fully masked for some rows, rows masked everywhere, merges of merges, in-place merges, strided
// and packed layouts, the thread split, and every refusal.
#include "attn/kernels/merge_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/view_ops.hpp"
#include "support/attention_bounds.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;

// The normwise tolerances of a merge against one pass, relative to the problem scale: the two
// add the same terms in a different order, a few eps of the type apart.
template <typename Scalar>
constexpr double merge_tolerance = std::is_same_v<Scalar, float> ? 1e-6 : 1e-12;

template <typename Scalar, int Rank>
attn::Tensor<Scalar, Rank> merge_random(const attn::Shape<Rank>& shape,
                                        attn::Generator& generator) {
  attn::Tensor<Scalar, Rank> tensor(shape);
  for (Index i = 0; i < tensor.numel(); ++i)
    tensor.data()[i] = generator.uniform<Scalar>(Scalar(-1.5), Scalar(1.5));
  return tensor;
}

// A global mask over all keys, and the same mask for the chunk of keys [s0, ...) in its local
// key indices: local key j is global key s0 + j.
struct MergeMask {
  bool causal = false;
  Index offset = 0;
  attn::Mask global() const { return causal ? attn::Mask::causal(offset) : attn::Mask::none(); }
  attn::Mask chunk(Index s0) const {
    return causal ? attn::Mask::causal(offset - s0) : attn::Mask::none();
  }
};

// Each chunk's partial: out and lse tensors, and the views the merge takes.
template <typename Scalar, int Rank>
struct MergeChunks {
  std::vector<attn::Tensor<Scalar, Rank>> outs;
  std::vector<attn::Tensor<Scalar, Rank - 1>> lses;
  std::vector<attn::AttentionPartial<Scalar, Rank>> partials() const {
    std::vector<attn::AttentionPartial<Scalar, Rank>> result;
    for (std::size_t c = 0; c < outs.size(); ++c)
      result.push_back({outs[c].view(), lses[c].view()});
    return result;
  }
};

template <int Rank>
attn::Shape<Rank - 1> merge_rows_shape(const attn::Shape<Rank>& shape) {
  attn::Shape<Rank - 1> rows{};
  for (int d = 0; d + 1 < Rank; ++d) rows[d] = shape[d];
  return rows;
}

// attention_partial over the key chunks [bounds[c], bounds[c + 1]).
template <typename Scalar, int Rank>
MergeChunks<Scalar, Rank> merge_chunks_of(const attn::Tensor<Scalar, Rank>& q,
                                          const attn::Tensor<Scalar, Rank>& k,
                                          const attn::Tensor<Scalar, Rank>& v,
                                          const std::vector<Index>& bounds, const MergeMask& mask,
                                          attn::AttentionOptions<Scalar> options = {}) {
  MergeChunks<Scalar, Rank> chunks;
  attn::Shape<Rank> out_shape = q.shape();
  out_shape[Rank - 1] = v.size(Rank - 1);
  for (std::size_t c = 0; c + 1 < bounds.size(); ++c) {
    const Index s0 = bounds[c], s1 = bounds[c + 1];
    chunks.outs.emplace_back(out_shape, Scalar(NAN));
    chunks.lses.emplace_back(merge_rows_shape<Rank>(out_shape), Scalar(NAN));
    options.mask = mask.chunk(s0);
    attn::attention_partial<Scalar, Rank>(
        q.view(), attn::slice(k.view(), Rank - 2, s0, s1), attn::slice(v.view(), Rank - 2, s0, s1),
        chunks.outs.back().view(), chunks.lses.back().view(), options);
  }
  return chunks;
}

// One pass of the shared kernel over every key, on its fused path, keeping the log-sum-exp.
template <typename Scalar, int Rank>
struct MergeSinglePass {
  attn::Tensor<Scalar, Rank> out;
  std::vector<Scalar> lse;
};
template <typename Scalar, int Rank>
MergeSinglePass<Scalar, Rank> merge_single_pass(const attn::Tensor<Scalar, Rank>& q,
                                                const attn::Tensor<Scalar, Rank>& k,
                                                const attn::Tensor<Scalar, Rank>& v,
                                                attn::AttentionOptions<Scalar> options) {
  attn::Shape<Rank> out_shape = q.shape();
  out_shape[Rank - 1] = v.size(Rank - 1);
  MergeSinglePass<Scalar, Rank> single{attn::Tensor<Scalar, Rank>(out_shape, Scalar(NAN)), {}};
  attn::AttentionCache<Scalar> cache;
  options.path = attn::AttentionPath::fused;
  attn::scaled_dot_product_attention<Scalar, Rank>(q.view(), k.view(), v.view(), single.out.view(),
                                                   options, {}, &cache);
  single.lse = cache.log_sum_exp;
  return single;
}

// lse against the expected values: -inf exactly where expected is -inf, the finite values
// normwise against their problem scale sqrt(rows) (max |logit| + log S), the size an lse can have.
template <typename Scalar, int Rank>
::testing::AssertionResult merge_lse_close(const attn::TensorView<const Scalar, Rank>& actual,
                                           const std::vector<Scalar>& expected, double logits,
                                           Index keys, const std::string& what) {
  const attn::Tensor<Scalar, Rank> contiguous(actual);
  if (static_cast<std::size_t>(contiguous.numel()) != expected.size()) {
    return ::testing::AssertionFailure()
           << what << ": " << contiguous.numel() << " rows, expected " << expected.size();
  }
  std::vector<double> finite_actual, finite_expected;
  for (std::size_t r = 0; r < expected.size(); ++r) {
    const Scalar a = contiguous.data()[r], e = expected[r];
    if (std::isinf(e) || std::isinf(a)) {
      if (a != e) {
        return ::testing::AssertionFailure()
               << what << ": row " << r << " has lse " << a << ", expected " << e;
      }
      continue;
    }
    finite_actual.push_back(a);
    finite_expected.push_back(e);
  }
  const double scale = std::sqrt(static_cast<double>(expected.size())) *
                       (logits + std::log(static_cast<double>(std::max<Index>(keys, 2))));
  return attn_test::close_normwise(finite_actual, finite_expected, scale, merge_tolerance<Scalar>,
                                   what + " lse");
}

// Splits (B 2, H 3, T, S, D 8, Dv 5) keys at `bounds`, merges, and checks against one pass.
// Returns how many (partial, row) pairs were fully masked, for the tests that promise some.
template <typename Scalar>
Index merge_check_split(Index T, Index S, const std::vector<Index>& bounds, const MergeMask& mask,
                        std::uint64_t seed) {
  attn::Generator generator(seed);
  const Index B = 2, H = 3, D = 8, Dv = 5;
  const auto q = merge_random<Scalar, 4>({B, H, T, D}, generator);
  const auto k = merge_random<Scalar, 4>({B, H, S, D}, generator);
  const auto v = merge_random<Scalar, 4>({B, H, S, Dv}, generator);
  attn::AttentionOptions<Scalar> options;
  options.mask = mask.global();
  const auto single = merge_single_pass(q, k, v, options);
  const auto chunks = merge_chunks_of(q, k, v, bounds, mask);
  attn::Tensor<Scalar, 4> merged({B, H, T, Dv}, Scalar(NAN));
  attn::Tensor<Scalar, 3> merged_lse({B, H, T}, Scalar(NAN));
  attn::merge_attention_partials<Scalar, 4>(chunks.partials(), merged.view(), merged_lse.view());

  std::string what = "T " + std::to_string(T) + " S " + std::to_string(S) + " chunks " +
                     std::to_string(bounds.size() - 1) +
                     (mask.causal ? " causal(" + std::to_string(mask.offset) + ")" : " none");
  const auto bounds_ = attn_test::attention_forward_bounds(q, k, v, 1 / std::sqrt(double(D)));
  EXPECT_TRUE(attn_test::close_normwise(merged, single.out, bounds_.out, merge_tolerance<Scalar>,
                                        what + " out"));
  EXPECT_TRUE((merge_lse_close<Scalar, 3>(merged_lse.view(), single.lse, bounds_.logits, S, what)));
  Index masked = 0;
  for (const auto& lse : chunks.lses) {
    for (Index i = 0; i < lse.numel(); ++i) masked += lse.data()[i] == -INFINITY ? 1 : 0;
  }
  return masked;
}

// ---- Split + merge == one pass ---------------------------------------------------------------

template <typename Scalar>
void merge_sweep() {
  std::uint64_t seed = 1;
  // Uneven chunks: 2, 3 and 4 of them, one a single key; T = 1 is decoding, T = 130 and
  // S = 1100 cross the fused kernel's query and key tiles inside a chunk.
  const std::vector<std::vector<Index>> splits65 = {{0, 40, 65}, {0, 1, 23, 65}, {0, 7, 8, 50, 65}};
  const std::vector<std::vector<Index>> splits1100 = {
      {0, 600, 1100}, {0, 513, 600, 1100}, {0, 100, 512, 1024, 1100}};
  for (const Index T : {Index{1}, Index{7}, Index{130}}) {
    for (const Index S : {Index{65}, Index{1100}}) {
      for (const auto& bounds : S == 65 ? splits65 : splits1100) {
        // No mask; causal over the last T of S tokens (decoding, prefill of a suffix).
        merge_check_split<Scalar>(T, S, bounds, MergeMask{}, seed++);
        merge_check_split<Scalar>(T, S, bounds, MergeMask{true, S - T}, seed++);
      }
    }
  }
}

TEST(MergeAttention, SplitKeysMergeToOnePassInFloat) {
  merge_sweep<float>();
}
TEST(MergeAttention, SplitKeysMergeToOnePassInDouble) {
  merge_sweep<double>();
}

TEST(MergeAttention, ChunksFullyMaskedForSomeRows) {
  // causal(0) with T 7 < S 65: query i sees keys 0..i, so every chunk after the first is
  // fully masked for some or all rows (lse -inf, weight 0).
  for (const auto& bounds : std::vector<std::vector<Index>>{{0, 3, 65}, {0, 2, 5, 9, 65}}) {
    EXPECT_GT(merge_check_split<float>(7, 65, bounds, MergeMask{true, 0}, 11), 0);
    EXPECT_GT(merge_check_split<double>(7, 65, bounds, MergeMask{true, 0}, 12), 0);
  }
}

TEST(MergeAttention, RowsMaskedInEveryChunkGiveZerosAndMinusInf) {
  // causal(-3): queries 0, 1, 2 see no key at all, in any chunk.
  merge_check_split<double>(7, 20, {0, 4, 11, 20}, MergeMask{true, -3}, 21);
  // causal(-T): no query sees any key; every partial and the merge are zeros and -inf.
  attn::Generator generator(22);
  const auto q = merge_random<double, 3>({2, 5, 4}, generator);
  const auto k = merge_random<double, 3>({2, 9, 4}, generator);
  const auto v = merge_random<double, 3>({2, 9, 3}, generator);
  const auto chunks = merge_chunks_of(q, k, v, {0, 4, 9}, MergeMask{true, -5});
  attn::Tensor<double, 3> merged({2, 5, 3}, NAN);
  attn::Tensor<double, 2> merged_lse({2, 5}, NAN);
  attn::merge_attention_partials<double, 3>(chunks.partials(), merged.view(), merged_lse.view());
  for (Index i = 0; i < merged.numel(); ++i) ASSERT_EQ(merged.data()[i], 0.0);
  for (Index i = 0; i < merged_lse.numel(); ++i) ASSERT_EQ(merged_lse.data()[i], -INFINITY);
}

TEST(MergeAttention, PartialOfFullyMaskedRowsAndEmptyChunks) {
  // attention_partial writes -inf where the fused path sees no key: a masked row, or a chunk
  // with no keys at all (S = 0), whose partial has weight 0 everywhere.
  attn::Tensor<float, 2> q({4, 3}, 0.5f), k({4, 3}, 0.25f), v({4, 2}, 1.0f), out({4, 2}, NAN);
  attn::Tensor<float, 1> lse({4}, NAN);
  attn::AttentionOptions<float> options;
  options.mask = attn::Mask::causal(-1);
  attn::attention_partial<float, 2>(q.view(), k.view(), v.view(), out.view(), lse.view(), options);
  EXPECT_EQ(lse(0), -INFINITY);
  EXPECT_EQ(out(0, 0), 0.0f);
  EXPECT_EQ(out(0, 1), 0.0f);
  for (Index i = 1; i < 4; ++i) EXPECT_NEAR(lse(i), 0.375f / std::sqrt(3.0f) + std::log(i), 1e-6);

  attn::Tensor<float, 2> k0({0, 3}), v0({0, 2}), out0({4, 2}, NAN);
  attn::Tensor<float, 1> lse0({4}, NAN);
  attn::attention_partial<float, 2>(q.view(), k0.view(), v0.view(), out0.view(), lse0.view());
  for (Index i = 0; i < 4; ++i) EXPECT_EQ(lse0(i), -INFINITY);
  attn::Tensor<float, 2> merged({4, 2}, NAN);
  attn::merge_attention_partials<float, 2>({{out0.view(), lse0.view()}, {out.view(), lse.view()}},
                                           merged.view());
  EXPECT_TRUE(attn_test::close_normwise(merged, out, 1.0, 0.0, "empty chunk merged"));
}

// ---- Merges compose -------------------------------------------------------------------------

TEST(MergeAttention, MergeOfMergesEqualsOneMerge) {
  attn::Generator generator(31);
  const Index B = 2, H = 2, T = 9, S = 70, D = 6, Dv = 4;
  const auto q = merge_random<double, 4>({B, H, T, D}, generator);
  const auto k = merge_random<double, 4>({B, H, S, D}, generator);
  const auto v = merge_random<double, 4>({B, H, S, Dv}, generator);
  const MergeMask mask{true, S - T - 20};  // the first rows miss the last chunks entirely
  const auto chunks = merge_chunks_of(q, k, v, {0, 13, 14, 41, 70}, mask);
  const auto partials = chunks.partials();
  attn::Tensor<double, 4> all({B, H, T, Dv}), left({B, H, T, Dv}), right({B, H, T, Dv}),
      tree({B, H, T, Dv}), ring({B, H, T, Dv});
  attn::Tensor<double, 3> all_lse({B, H, T}), left_lse({B, H, T}), right_lse({B, H, T}),
      tree_lse({B, H, T}), ring_lse({B, H, T});
  attn::merge_attention_partials<double, 4>(partials, all.view(), all_lse.view());
  // A tree: (0 1) (2 3), then the two.
  attn::merge_attention_partials<double, 4>({partials[0], partials[1]}, left.view(),
                                            left_lse.view());
  attn::merge_attention_partials<double, 4>({partials[2], partials[3]}, right.view(),
                                            right_lse.view());
  attn::merge_attention_partials<double, 4>(
      {{left.view(), left_lse.view()}, {right.view(), right_lse.view()}}, tree.view(),
      tree_lse.view());
  // A ring: the running result merged in place with each next chunk as it arrives.
  attn::merge_attention_partials<double, 4>({partials[0]}, ring.view(), ring_lse.view());
  for (std::size_t c = 1; c < partials.size(); ++c) {
    attn::merge_attention_partials<double, 4>({{ring.view(), ring_lse.view()}, partials[c]},
                                              ring.view(), ring_lse.view());
  }
  const auto bounds = attn_test::attention_forward_bounds(q, k, v, 1 / std::sqrt(double(D)));
  const std::vector<double> expected_lse(all_lse.data(), all_lse.data() + all_lse.numel());
  for (const auto* result : {&tree, &ring}) {
    const std::string what = result == &tree ? "tree" : "ring";
    EXPECT_TRUE(attn_test::close_normwise(*result, all, bounds.out, 1e-12, what));
  }
  EXPECT_TRUE(
      (merge_lse_close<double, 3>(tree_lse.view(), expected_lse, bounds.logits, S, "tree")));
  EXPECT_TRUE(
      (merge_lse_close<double, 3>(ring_lse.view(), expected_lse, bounds.logits, S, "ring")));
  // And the one merge is the single pass.
  attn::AttentionOptions<double> options;
  options.mask = mask.global();
  const auto single = merge_single_pass(q, k, v, options);
  EXPECT_TRUE(attn_test::close_normwise(all, single.out, bounds.out, 1e-12, "one merge"));
}

TEST(MergeAttention, OnePartialIsItself) {
  attn::Tensor<float, 2> out({3, 2}, {1, 2, 3, 4, 5, 6}), merged({3, 2});
  attn::Tensor<float, 1> lse({3}, {0.5f, -INFINITY, 2.0f}), merged_lse({3});
  attn::merge_attention_partials<float, 2>({{out.view(), lse.view()}}, merged.view(),
                                           merged_lse.view());
  EXPECT_EQ(merged(0, 1), 2.0f);
  EXPECT_EQ(merged(1, 0), 0.0f);  // lse -inf: a fully masked row, whatever out holds
  EXPECT_EQ(merged(2, 1), 6.0f);
  EXPECT_EQ(merged_lse(0), 0.5f);
  EXPECT_EQ(merged_lse(1), -INFINITY);
  EXPECT_EQ(merged_lse(2), 2.0f);
}

TEST(MergeAttention, HandComputedWeights) {
  // lse 0 and log 3: weights 1/4 and 3/4; merged lse log 4. A masked chunk's NaN out is unread.
  attn::Tensor<double, 2> a({1, 2}, {4, 8}), b({1, 2}, {0, 4}), masked({1, 2}, NAN), out({1, 2});
  attn::Tensor<double, 1> la({1}, {0.0}), lb({1}, {std::log(3.0)}), lm({1}, {-INFINITY}), lse({1});
  attn::merge_attention_partials<double, 2>(
      {{a.view(), la.view()}, {masked.view(), lm.view()}, {b.view(), lb.view()}}, out.view(),
      lse.view());
  EXPECT_NEAR(out(0, 0), 1.0, 1e-15);
  EXPECT_NEAR(out(0, 1), 5.0, 1e-15);
  EXPECT_NEAR(lse(0), std::log(4.0), 1e-15);
  // Large lse: no overflow, the max is subtracted.
  attn::Tensor<double, 1> big_a({1}, {1000.0}), big_b({1}, {1000.0 + std::log(3.0)});
  attn::merge_attention_partials<double, 2>({{a.view(), big_a.view()}, {b.view(), big_b.view()}},
                                            out.view(), lse.view());
  EXPECT_NEAR(out(0, 1), 5.0, 1e-13);
  EXPECT_NEAR(lse(0), 1000.0 + std::log(4.0), 1e-12);
}

// ---- Layouts: in place, strided, packed, ranks 2 and 3 ---------------------------------------

TEST(MergeAttention, InPlaceIntoAnyPartial) {
  attn::Generator generator(41);
  const auto q = merge_random<float, 3>({3, 6, 4}, generator);
  const auto k = merge_random<float, 3>({3, 30, 4}, generator);
  const auto v = merge_random<float, 3>({3, 30, 5}, generator);
  const std::vector<Index> bounds = {0, 10, 17, 30};
  const MergeMask mask{true, 24};
  const auto reference_chunks = merge_chunks_of(q, k, v, bounds, mask);
  attn::Tensor<float, 3> expected({3, 6, 5});
  attn::Tensor<float, 2> expected_lse({3, 6});
  attn::merge_attention_partials<float, 3>(reference_chunks.partials(), expected.view(),
                                           expected_lse.view());
  for (std::size_t target = 0; target < 3; ++target) {
    auto chunks = merge_chunks_of(q, k, v, bounds, mask);
    attn::merge_attention_partials<float, 3>(chunks.partials(), chunks.outs[target].view(),
                                             chunks.lses[target].view());
    EXPECT_TRUE(attn_test::close_normwise(chunks.outs[target], expected, 1.0, 0.0,
                                          "in place into partial " + std::to_string(target)));
    EXPECT_TRUE(attn_test::close_normwise(chunks.lses[target], expected_lse, 1.0, 0.0,
                                          "lse in place " + std::to_string(target)));
  }
}

TEST(MergeAttention, PackedOutAndLseBuffers) {
  // What a process sends: one (T, Dv + 1) buffer per chunk, out in the first Dv columns and lse
  // in the last (strided views), merged in place into chunk 0's buffer.
  attn::Generator generator(51);
  const Index T = 5, S = 24, D = 4, Dv = 3;
  const auto q = merge_random<double, 2>({T, D}, generator);
  const auto k = merge_random<double, 2>({S, D}, generator);
  const auto v = merge_random<double, 2>({S, Dv}, generator);
  const std::vector<Index> bounds = {0, 9, 24};
  std::vector<attn::Tensor<double, 2>> packed;
  std::vector<attn::AttentionPartial<double, 2>> partials;
  for (std::size_t c = 0; c < 2; ++c) packed.emplace_back(attn::Shape<2>{T, Dv + 1}, NAN);
  const auto out_of = [&](std::size_t c) { return attn::slice(packed[c].view(), 1, 0, Dv); };
  const auto lse_of = [&](std::size_t c) { return attn::select(packed[c].view(), 1, Dv); };
  for (std::size_t c = 0; c < 2; ++c) {
    attn::AttentionOptions<double> options;
    options.mask = attn::Mask::causal(S - T - bounds[c]);
    attn::attention_partial<double, 2>(q.view(), attn::slice(k.view(), 0, bounds[c], bounds[c + 1]),
                                       attn::slice(v.view(), 0, bounds[c], bounds[c + 1]),
                                       out_of(c), lse_of(c), options);
    partials.push_back({out_of(c), lse_of(c)});
  }
  attn::merge_attention_partials<double, 2>(partials, out_of(0), lse_of(0));
  attn::AttentionOptions<double> options;
  options.mask = attn::Mask::causal(S - T);
  const auto single = merge_single_pass(q, k, v, options);
  const auto bounds_ = attn_test::attention_forward_bounds(q, k, v, 1 / std::sqrt(double(D)));
  EXPECT_TRUE(attn_test::close_normwise(out_of(0), single.out.view(), bounds_.out, 1e-12));
  EXPECT_TRUE((merge_lse_close<double, 1>(lse_of(0), single.lse, bounds_.logits, S, "packed")));
}

TEST(MergeAttention, ThreadedMergeEqualsOneThread) {
  // 2048 rows of 64 values from 2 chunks: above the threshold, split over attn's threads. Each
  // row is merged alone, so the split changes nothing, bit for bit.
  attn::Generator generator(61);
  const Index B = 1, H = 4, T = 512, Dv = 64;
  std::vector<attn::Tensor<float, 4>> outs;
  std::vector<attn::Tensor<float, 3>> lses;
  std::vector<attn::AttentionPartial<float, 4>> partials;
  for (int c = 0; c < 2; ++c) {
    outs.push_back(merge_random<float, 4>({B, H, T, Dv}, generator));
    lses.push_back(merge_random<float, 3>({B, H, T}, generator));
    lses.back()(0, 1, 7) = -INFINITY;      // masked in both chunks
    lses.back()(0, 2, 9 + c) = -INFINITY;  // masked in one
  }
  for (int c = 0; c < 2; ++c) partials.push_back({outs[c].view(), lses[c].view()});
  const int before = attn::num_threads();
  attn::Tensor<float, 4> one({B, H, T, Dv}), two({B, H, T, Dv});
  attn::Tensor<float, 3> one_lse({B, H, T}), two_lse({B, H, T});
  attn::set_num_threads(1);
  attn::merge_attention_partials<float, 4>(partials, one.view(), one_lse.view());
  attn::set_num_threads(2);
  attn::merge_attention_partials<float, 4>(partials, two.view(), two_lse.view());
  attn::set_num_threads(before);
  Index differ = 0;  // bit for bit, -inf included
  for (Index i = 0; i < one.numel(); ++i) differ += one.data()[i] != two.data()[i] ? 1 : 0;
  for (Index i = 0; i < one_lse.numel(); ++i)
    differ += one_lse.data()[i] != two_lse.data()[i] ? 1 : 0;
  EXPECT_EQ(differ, 0);
  EXPECT_EQ(two_lse(0, 1, 7), -INFINITY);
  EXPECT_EQ(two(0, 1, 7, 0), 0.0f);
}

// ---- Against PyTorch: the kernel's fixtures (B 2, H 3, T 5, S 7) through split + merge -------

template <typename Scalar>
void merge_check_fixture(const std::string& name) {
  const auto file = attn_test::load_io(name);
  const auto q = attn_test::fixture_tensor<Scalar, 4>(file, "q");
  const auto k = attn_test::fixture_tensor<Scalar, 4>(file, "k");
  const auto v = attn_test::fixture_tensor<Scalar, 4>(file, "v");
  const auto expected = attn_test::fixture_tensor<Scalar, 4>(file, "out");
  const std::string kind = file.metadata.at("mask");
  attn::Tensor<bool, 2> matrix;
  if (kind == "matrix") {
    const auto values = attn_test::fixture_tensor<Scalar, 2>(file, "mask");
    matrix = attn::Tensor<bool, 2>(values.shape());
    for (Index i = 0; i < values.numel(); ++i) matrix.data()[i] = values.data()[i] != 0;
  }
  const bool custom_scale = name.find("scale") != std::string::npos;
  const std::vector<Index> bounds = {0, 2, 3, 7};  // S = 7 in three uneven chunks
  std::vector<attn::Tensor<Scalar, 4>> outs;
  std::vector<attn::Tensor<Scalar, 3>> lses;
  std::vector<attn::AttentionPartial<Scalar, 4>> partials;
  for (std::size_t c = 0; c + 1 < bounds.size(); ++c) {
    const Index s0 = bounds[c], s1 = bounds[c + 1];
    attn::AttentionOptions<Scalar> options;
    if (custom_scale) options.scale = Scalar(0.3);
    if (kind == "causal") options.mask = attn::Mask::causal(-s0);
    if (kind == "matrix") options.mask = attn::Mask::matrix(attn::slice(matrix.view(), 1, s0, s1));
    outs.emplace_back(expected.shape(), Scalar(NAN));
    lses.emplace_back(attn::Shape<3>{q.size(0), q.size(1), q.size(2)}, Scalar(NAN));
    attn::attention_partial<Scalar, 4>(q.view(), attn::slice(k.view(), 2, s0, s1),
                                       attn::slice(v.view(), 2, s0, s1), outs.back().view(),
                                       lses.back().view(), options);
  }
  for (std::size_t c = 0; c < outs.size(); ++c)
    partials.push_back({outs[c].view(), lses[c].view()});
  attn::Tensor<Scalar, 4> merged(expected.shape(), Scalar(NAN));
  attn::merge_attention_partials<Scalar, 4>(partials, merged.view());
  // As the kernel's own fixture test: normwise against ||out||_F's bound, 4 eps (max |logit| +
  // sqrt(max(T, S, D, Dv))).
  const double scale = custom_scale ? 0.3 : 1 / std::sqrt(double(q.size(3)));
  const auto bounds_ = attn_test::attention_forward_bounds(q, k, v, scale);
  EXPECT_TRUE(attn_test::close_normwise(
      merged, expected, bounds_.out,
      attn_test::rounding_tolerance<Scalar>(bounds_.logits, bounds_.length), name + " merged"));
  if (kind == "matrix") {  // query 2 is masked from every key: zeros, where PyTorch has NaN
    for (Index d = 0; d < merged.size(3); ++d) EXPECT_EQ(merged(1, 2, 2, d), Scalar(0));
  }
}

TEST(MergeAttention, SplitAndMergedMatchesPyTorchFixtures) {
  for (const char* name : {"sdpa_none_f32", "sdpa_causal_f32", "sdpa_matrix_f32", "sdpa_scale_f32"})
    merge_check_fixture<float>(name);
  for (const char* name : {"sdpa_none_f64", "sdpa_causal_f64", "sdpa_matrix_f64", "sdpa_scale_f64"})
    merge_check_fixture<double>(name);
}

// ---- Refusals ----------------------------------------------------------------------------------

TEST(MergeAttention, RefusesBadPartials) {
  attn::Tensor<float, 4> a({2, 3, 7, 4}), b({2, 3, 7, 4}), wide({2, 3, 7, 5}), out({2, 3, 7, 4});
  attn::Tensor<float, 3> la({2, 3, 7}), lb({2, 3, 7}), short_lse({2, 3, 6});
  using Partials = std::vector<attn::AttentionPartial<float, 4>>;
  ATTN_EXPECT_ERROR(attn::merge_attention_partials(Partials{}, out.view()), std::invalid_argument,
                    {"merge_attention_partials", "partials is empty"});
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials({{a.view(), la.view()}, {wide.view(), lb.view()}}, out.view()),
      attn::ShapeError,
      {"merge_attention_partials", "partials[1].out has shape (2, 3, 7, 5)",
       "partials[0].out has shape (2, 3, 7, 4)"});
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials({{a.view(), la.view()}, {b.view(), lb.view()}}, wide.view()),
      attn::ShapeError, {"merge_attention_partials", "out has shape (2, 3, 7, 5)", "(2, 3, 7, 4)"});
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials({{a.view(), la.view()}, {b.view(), short_lse.view()}},
                                     out.view()),
      attn::ShapeError,
      {"merge_attention_partials", "partials[1].lse has shape (2, 3, 6)", "must be (2, 3, 7)"});
  ATTN_EXPECT_ERROR(attn::merge_attention_partials({{a.view(), la.view()}, {b.view(), lb.view()}},
                                                   out.view(), short_lse.view()),
                    attn::ShapeError,
                    {"merge_attention_partials", "lse has shape (2, 3, 6)", "(2, 3, 7)"});
}

TEST(MergeAttention, RefusesNaNAndPlusInfLseAndWritesNothing) {
  attn::Tensor<double, 3> a({2, 4, 3}, 1.0), b({2, 4, 3}, 2.0), c({2, 4, 3}, 3.0),
      out({2, 4, 3}, -7.0);
  attn::Tensor<double, 2> la({2, 4}), lb({2, 4}), lc({2, 4});
  lc(1, 0) = NAN;  // row 4 of 8
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials(
          {{a.view(), la.view()}, {b.view(), lb.view()}, {c.view(), lc.view()}}, out.view()),
      std::invalid_argument,
      {"merge_attention_partials", "partials[2].lse holds", "at row 4 of 8", "(2, 4)"});
  lc(1, 0) = INFINITY;
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials(
          {{a.view(), la.view()}, {b.view(), lb.view()}, {c.view(), lc.view()}}, out.view()),
      std::invalid_argument, {"partials[2].lse holds inf at row 4"});
  for (Index i = 0; i < out.numel(); ++i) ASSERT_EQ(out.data()[i], -7.0);
}

TEST(MergeAttention, RefusesOverlapOtherThanTheSameView) {
  // out shifted by one row against partial 1's out: row r would overwrite row r + 1 before it
  // is read.
  attn::Tensor<float, 2> a({4, 2}, 1.0f), buffer({5, 2}, 2.0f);
  attn::Tensor<float, 1> la({4}), lb({4});
  const auto partial_b = attn::slice(buffer.view(), 0, 1, 5);
  const auto shifted = attn::slice(buffer.view(), 0, 0, 4);
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials({{a.view(), la.view()}, {partial_b, lb.view()}}, shifted),
      std::invalid_argument,
      {"merge_attention_partials", "out (shape (4, 2)", "overlaps partials[1].out", "same view"});
  // The same for the merged lse against a partial's lse.
  attn::Tensor<float, 2> separate({4, 2});
  attn::Tensor<float, 1> lse_buffer({5});
  ATTN_EXPECT_ERROR(
      attn::merge_attention_partials(
          {{a.view(), la.view()}, {a.view(), attn::slice(lse_buffer.view(), 0, 1, 5)}},
          separate.view(), attn::slice(lse_buffer.view(), 0, 0, 4)),
      std::invalid_argument, {"lse (shape (4)", "overlaps partials[1].lse"});
}

TEST(MergeAttention, PartialRefusesDropoutTheReferencePathAndABadLse) {
  attn::Tensor<float, 3> q({2, 3, 4}), k({2, 5, 4}), v({2, 5, 2}), out({2, 3, 2});
  attn::Tensor<float, 2> lse({2, 3}), wrong({2, 4});
  attn::Generator generator(1);
  attn::AttentionOptions<float> options;
  options.dropout = 0.25f;
  options.training = true;
  options.generator = &generator;
  ATTN_EXPECT_ERROR(
      attn::attention_partial(q.view(), k.view(), v.view(), out.view(), lse.view(), options),
      std::invalid_argument,
      {"attention_partial", "dropout (0.25) in training mode", "not supported"});
  options.training = false;  // eval mode: dropout does nothing, the partial runs
  attn::attention_partial(q.view(), k.view(), v.view(), out.view(), lse.view(), options);
  options.path = attn::AttentionPath::reference;
  ATTN_EXPECT_ERROR(
      attn::attention_partial(q.view(), k.view(), v.view(), out.view(), lse.view(), options),
      std::invalid_argument, {"attention_partial", "AttentionPath::reference"});
  ATTN_EXPECT_ERROR(attn::attention_partial(q.view(), k.view(), v.view(), out.view(), wrong.view()),
                    attn::ShapeError,
                    {"attention_partial", "lse has shape (2, 4)", "must be (2, 3)"});
  // The kernel's own checks still apply (it names itself).
  ATTN_EXPECT_ERROR(attn::attention_partial(q.view(), v.view(), v.view(), out.view(), lse.view()),
                    attn::ShapeError, {"scaled_dot_product_attention", "head dim"});
}

}  // namespace
