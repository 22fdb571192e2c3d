#include "attn/layers/kv_cache.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/layers/grouped_query_attention.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "attn/layers/multi_head_attention_combined_qkv.hpp"
#include "support/expect_error.hpp"
#include "support/layer_fixture.hpp"

namespace {

using attn::Index;

const attn::AttentionPath kv_cache_paths[] = {attn::AttentionPath::reference,
                                              attn::AttentionPath::fused};

const char* kv_cache_path_name(attn::AttentionPath path) {
  return path == attn::AttentionPath::fused ? "fused" : "reference";
}

/// The bar a cached run must meet, normwise against the output's problem scale (layer_scales):
/// 1e-6 in float, 1e-12 in double.
template <typename Scalar>
constexpr double kv_cache_bar() {
  return std::is_same_v<Scalar, float> ? 1e-6 : 1e-12;
}

/// A prefill of `prefill` tokens, then one token at a time up to `tokens`.
std::vector<Index> kv_cache_prefill_then_single(Index tokens, Index prefill) {
  std::vector<Index> chunks{prefill};
  for (Index t = prefill; t < tokens; ++t) chunks.push_back(1);
  return chunks;
}

/// Chunks of 2, 3, 7 and 1 tokens in turn (the last one cut to fit), for chunks longer than one
/// token after the first, which a ring sees wrap in the middle of a chunk.
std::vector<Index> kv_cache_mixed_chunks(Index tokens) {
  const Index sizes[] = {2, 3, 7, 1};
  std::vector<Index> chunks;
  for (Index start = 0, i = 0; start < tokens; ++i) {
    const Index n = std::min(sizes[i % 4], tokens - start);
    chunks.push_back(n);
    start += n;
  }
  return chunks;
}

std::string kv_cache_chunks_text(const std::vector<Index>& chunks) {
  std::string text = "chunks";
  for (std::size_t i = 0; i < chunks.size() && i < 6; ++i) text += " " + std::to_string(chunks[i]);
  return text + (chunks.size() > 6 ? " ... (" + std::to_string(chunks.size()) + " chunks)" : "");
}

/// The number of key/value heads of a layer of the MultiHeadEngine family.
template <typename Layer>
Index kv_cache_heads_of(const Layer& layer) {
  return layer.kv_dim() / layer.head_dim();
}

/// A cache for `layer` and a batch of `batch`: a ring of the layer's window, or room for
/// `capacity` positions.
template <typename Layer>
attn::KVCache<typename Layer::Scalar> kv_cache_for(const Layer& layer, Index batch, Index capacity,
                                                   bool ring) {
  using Cache = attn::KVCache<typename Layer::Scalar>;
  return ring
             ? Cache::with_window(batch, kv_cache_heads_of(layer), layer.head_dim(), layer.window())
             : Cache(batch, kv_cache_heads_of(layer), layer.head_dim(), capacity);
}

/// Feeds x (B, T, d_in) through `cache` chunk by chunk (each chunk a strided slice of x) and
/// returns the chunks' outputs side by side, (B, T, d_out).
template <typename Layer, typename Scalar = typename Layer::Scalar>
attn::Tensor<Scalar, 3> kv_cache_run(const Layer& layer, const attn::Tensor<Scalar, 3>& x,
                                     const std::vector<Index>& chunks,
                                     attn::KVCache<Scalar>& cache) {
  attn::Tensor<Scalar, 3> out({x.size(0), x.size(1), layer.d_out()});
  Index start = cache.size();
  for (const Index n : chunks) {
    attn::Tensor<Scalar, 3> chunk;
    try {
      chunk = layer.forward(attn::slice(x.view(), 1, start, start + n), cache);
    } catch (const std::exception& error) {
      // Reported as a failure of this run only, so the other runs of the test still report.
      ADD_FAILURE() << "forward of tokens [" << start << ", " << start + n << ") with a "
                    << (cache.window() > 0 ? "ring" : "plain") << " cache threw: " << error.what();
      return out;
    }
    EXPECT_EQ(cache.size(), start + n);
    EXPECT_EQ(cache.held(), cache.window() > 0 ? std::min(start + n, cache.window()) : start + n);
    for (Index b = 0; b < x.size(0); ++b) {
      for (Index t = 0; t < n; ++t) {
        for (Index c = 0; c < layer.d_out(); ++c) out(b, start + t, c) = chunk(b, t, c);
      }
    }
    start += n;
  }
  return out;
}

template <int Rank, typename Scalar>
attn::Tensor<Scalar, Rank> kv_cache_random(const attn::Shape<Rank>& shape,
                                           attn::Generator& generator) {
  attn::Tensor<Scalar, Rank> x(shape);
  for (Index i = 0; i < x.numel(); ++i) x.data()[i] = generator.normal<Scalar>();
  return x;
}

// ---- Against the fixtures: the cached path gives PyTorch's full forward
// --------------------------

/// A fixture case's float or double tensors, state and input.
template <typename Scalar>
struct KvCacheCase {
  attn::io::SafetensorsFile io;
  attn::StateDict<Scalar> state;
  attn::Tensor<Scalar, 3> x, out;
};

template <typename Scalar>
KvCacheCase<Scalar> kv_cache_case(const std::string& name) {
  constexpr bool is_double = std::is_same_v<Scalar, double>;
  KvCacheCase<Scalar> c{attn_test::load_io(name), {}, {}, {}};
  c.state = is_double
                ? attn_test::prefixed<Scalar>(c.io, "f64.state.")
                : attn::io::to_state_dict<Scalar>(attn_test::read_fixture(name + ".safetensors"));
  c.x = attn_test::fixture_tensor<Scalar, 3>(c.io, is_double ? "f64.x" : "x");
  c.out = attn_test::fixture_tensor<Scalar, 3>(c.io, is_double ? "f64.out" : "out");
  return c;
}

/// The metadata's comma-separated list, "1,5,11".
std::vector<Index> kv_cache_metadata_list(const attn::io::SafetensorsFile& io,
                                          const std::string& key) {
  std::vector<Index> values;
  const std::string& text = io.metadata.at(key);
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    values.push_back(static_cast<Index>(std::stoll(text.substr(start, comma - start))));
    start = comma + 1;
  }
  return values;
}

template <typename Scalar>
attn::MultiHeadAttention<Scalar> kv_cache_make_mha(const attn::io::SafetensorsFile& io,
                                                   attn::Generator& generator) {
  using attn_test::metadata_int;
  attn::MultiHeadAttention<Scalar> layer(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), metadata_int(io, "context_length"),
      Scalar(0), metadata_int(io, "num_heads"), metadata_int(io, "qkv_bias") != 0, generator);
  if (attn_test::window_of(io) > 0) layer.set_window(attn_test::window_of(io));
  return layer;
}

template <typename Scalar>
attn::GroupedQueryAttention<Scalar> kv_cache_make_gqa(const attn::io::SafetensorsFile& io,
                                                      attn::Generator& generator) {
  using attn_test::metadata_int;
  attn::GroupedQueryAttention<Scalar> layer(
      metadata_int(io, "d_in"), metadata_int(io, "d_out"), Scalar(0), metadata_int(io, "num_heads"),
      metadata_int(io, "num_kv_groups"), metadata_int(io, "qkv_bias") != 0, generator);
  layer.set_rope(static_cast<Scalar>(std::stod(io.metadata.at("rope_theta"))),
                 metadata_int(io, "context_length"));
  return layer;
}

/// For every prefill size of the case's metadata and both kernel paths: prefill, then one token
/// at a time, through a plain cache (and a ring of the layer's window when `ring`); the outputs
/// side by side must equal PyTorch's full forward.
template <typename Scalar, typename Make>
void check_cache_fixture(const std::string& name, Make make, bool ring) {
  SCOPED_TRACE(name);
  const KvCacheCase<Scalar> c = kv_cache_case<Scalar>(name);
  const Index B = c.x.size(0), T = c.x.size(1);
  const attn_test::LayerScales scales =
      attn_test::layer_scales(c.state, c.x, nullptr, attn_test::num_heads_of(c.io));
  const std::vector<Index> prefills = kv_cache_metadata_list(c.io, "prefill");
  ASSERT_FALSE(prefills.empty());
  for (const auto path : kv_cache_paths) {
    SCOPED_TRACE(kv_cache_path_name(path));
    attn::Generator generator(1);
    auto layer = make(c.io, generator);
    attn::load_state_dict(layer, c.state);
    layer.eval();
    layer.set_attention_path(path);
    for (const Index prefill : prefills) {
      const auto chunks = kv_cache_prefill_then_single(T, prefill);
      SCOPED_TRACE(kv_cache_chunks_text(chunks));
      for (const bool use_ring : {false, true}) {
        if (use_ring && !ring) continue;
        SCOPED_TRACE(use_ring ? "ring KVCache::with_window" : "plain KVCache");
        auto cache = kv_cache_for(layer, B, T, use_ring);
        EXPECT_TRUE(attn_test::close_normwise(kv_cache_run(layer, c.x, chunks, cache), c.out,
                                              scales.out, kv_cache_bar<Scalar>(), "cached out"));
      }
    }
  }
}

TEST(KVCache, CacheMhaMatchesPyTorchFullForward) {
  // The fixture's layer first: its init, full forward, weights and gradients (the reference the
  // cached path is held to).
  attn_test::check_layer_fixture<3>("cache_mha", kv_cache_make_mha<float>);
  attn_test::check_layer_gradients<double, 3>("cache_mha", kv_cache_make_mha<double>);
  EXPECT_EQ(kv_cache_metadata_list(attn_test::load_io("cache_mha"), "prefill"),
            (std::vector<Index>{1, 5, 11}));
  check_cache_fixture<float>("cache_mha", kv_cache_make_mha<float>, false);
  check_cache_fixture<double>("cache_mha", kv_cache_make_mha<double>, false);
}

TEST(KVCache, CacheSlidingWindowMatchesPyTorchFullForward) {
  const auto io = attn_test::load_io("cache_swa_w4");
  ASSERT_EQ(attn_test::window_of(io), 4);
  attn_test::check_layer_fixture<3>("cache_swa_w4", kv_cache_make_mha<float>);
  attn_test::check_layer_gradients<double, 3>("cache_swa_w4", kv_cache_make_mha<double>);
  check_cache_fixture<float>("cache_swa_w4", kv_cache_make_mha<float>, true);
  check_cache_fixture<double>("cache_swa_w4", kv_cache_make_mha<double>, true);
}

TEST(KVCache, CacheGqaRopeMatchesPyTorchFullForward) {
  attn_test::check_layer_fixture<3>("cache_gqa_rope", kv_cache_make_gqa<float>);
  attn_test::check_layer_gradients<double, 3>("cache_gqa_rope", kv_cache_make_gqa<double>);
  check_cache_fixture<float>("cache_gqa_rope", kv_cache_make_gqa<float>, false);
  check_cache_fixture<double>("cache_gqa_rope", kv_cache_make_gqa<double>, false);
}

// ---- A long run: cached against the layer's own full forward ----------------------------------
// A consistency check, not a reference: attn's cached path against attn's full forward over the
// whole sequence (which the fixture tests above and the layers' own tests hold to PyTorch), for
// sequences far longer than the fixtures', every prefill size class, and the windowed ring going
// round many times.

constexpr Index kv_cache_long = 80;

template <typename Layer>
void check_long_run(Layer layer, bool ring, const std::string& what) {
  using Scalar = typename Layer::Scalar;
  SCOPED_TRACE(what);
  const Index B = 2, T = kv_cache_long;
  attn::Generator data(31);
  const auto x = kv_cache_random<3, Scalar>({B, T, layer.d_in()}, data);
  layer.eval();
  const attn_test::LayerScales scales =
      attn_test::layer_scales(attn::state_dict(layer), x, nullptr, layer.num_heads());
  for (const auto path : kv_cache_paths) {
    SCOPED_TRACE(kv_cache_path_name(path));
    layer.set_attention_path(path);
    const auto full = layer.forward(x.view());
    std::vector<std::vector<Index>> runs;
    for (const Index prefill : {Index{1}, Index{5}, T - 1}) {
      runs.push_back(kv_cache_prefill_then_single(T, prefill));
    }
    runs.push_back(kv_cache_mixed_chunks(T));
    EXPECT_GE(runs[1].size() - 1, 64u) << "single-token steps after a prefill of 5";
    for (const auto& chunks : runs) {
      SCOPED_TRACE(kv_cache_chunks_text(chunks));
      auto cache = kv_cache_for(layer, B, T, ring);
      EXPECT_TRUE(attn_test::close_normwise(kv_cache_run(layer, x, chunks, cache), full, scales.out,
                                            kv_cache_bar<Scalar>(), "cached out"));
      EXPECT_EQ(cache.size(), T);
    }
  }
}

template <typename Scalar>
void check_long_runs() {
  const Index T = kv_cache_long;
  check_long_run(
      attn::MultiHeadAttention<Scalar>(6, 12, T, Scalar(0), 3, true, attn::Generator(41)), false,
      "MultiHeadAttention");
  check_long_run(attn::MultiHeadAttentionCombinedQKV<Scalar>(6, 12, T, Scalar(0), 3, true,
                                                             attn::Generator(42)),
                 false, "MultiHeadAttentionCombinedQKV");
  check_long_run(
      attn::GroupedQueryAttention<Scalar>(6, 16, Scalar(0), 4, 2, true, attn::Generator(43)), false,
      "GroupedQueryAttention G 2");
  check_long_run(
      attn::GroupedQueryAttention<Scalar>(6, 16, Scalar(0), 4, 1, false, attn::Generator(44)),
      false, "GroupedQueryAttention G 1 (multi-query)");
  {
    attn::GroupedQueryAttention<Scalar> layer(6, 16, Scalar(0), 4, 2, false, attn::Generator(45));
    layer.set_rope(Scalar(10000), T);
    check_long_run(layer, false, "GroupedQueryAttention with RoPE");
  }
  {
    attn::MultiHeadAttention<Scalar> layer(6, 12, T, Scalar(0), 3, true, attn::Generator(46));
    layer.set_rope(Scalar(10000), T);
    check_long_run(layer, false, "MultiHeadAttention with RoPE");
  }
  for (const bool ring : {true, false}) {
    const std::string cache = ring ? ", ring cache" : ", plain cache";
    {
      attn::MultiHeadAttention<Scalar> layer(6, 12, T, Scalar(0), 3, true, attn::Generator(47));
      layer.set_window(7);
      check_long_run(layer, ring, "MultiHeadAttention, window 7" + cache);
    }
    {
      attn::MultiHeadAttention<Scalar> layer(6, 12, T, Scalar(0), 3, false, attn::Generator(48));
      layer.set_window(1);
      check_long_run(layer, ring, "MultiHeadAttention, window 1" + cache);
    }
    {
      attn::GroupedQueryAttention<Scalar> layer(6, 16, Scalar(0), 4, 2, true, attn::Generator(49));
      layer.set_rope(Scalar(500000), T);
      layer.set_window(5);
      check_long_run(layer, ring, "GroupedQueryAttention with RoPE, window 5" + cache);
    }
  }
}

TEST(KVCache, LongRunEqualsFullForwardFloat) {
  check_long_runs<float>();
}
TEST(KVCache, LongRunEqualsFullForwardDouble) {
  check_long_runs<double>();
}

// Decoding with few (batch, head) pairs and a long cache splits the cached keys into pieces
// that run on separate threads and are merged by log-sum-exp (causal_core.hpp's
// split_for_threads: runs of at least 512 keys, fewer pairs than twice the threads). One
// sequence, one head, 600 tokens, two threads: the same consistency check as the long run.
TEST(KVCache, LongCacheSplitAcrossThreadsEqualsFullForward) {
  const int before = attn::num_threads();
  attn::set_num_threads(2);
  const Index T = 600;
  attn::Generator data(81);
  const auto x = kv_cache_random<3, double>({1, T, 4}, data);
  for (const bool ring : {false, true}) {
    attn::MultiHeadAttention<double> layer(4, 4, T, 0.0, 1, true, attn::Generator(82));
    if (ring) layer.set_window(560);
    layer.eval();
    const attn_test::LayerScales scales =
        attn_test::layer_scales(attn::state_dict(layer), x, nullptr, 1);
    for (const auto path : kv_cache_paths) {
      SCOPED_TRACE(std::string(kv_cache_path_name(path)) + (ring ? ", ring of 560" : ", plain"));
      layer.set_attention_path(path);
      auto cache = kv_cache_for(layer, 1, T, ring);
      EXPECT_TRUE(attn_test::close_normwise(
          kv_cache_run(layer, x, kv_cache_prefill_then_single(T, T - 40), cache),
          layer.forward(x.view()), scales.out, kv_cache_bar<double>(), "cached out"));
    }
  }
  attn::set_num_threads(before);
}

// ---- Memory, reset ------------------------------------------------------------------------------

// A windowed cache keeps W positions whatever the sequence's length: storage (B, kv_heads, W,
// head_dim), position p in slot p % W, the same keys and values a plain cache holds at p.
TEST(KVCache, WindowedCacheMemoryStaysAtTheWindow) {
  const Index W = 6, T = kv_cache_long;
  attn::GroupedQueryAttention<double> layer(6, 16, 0.0, 4, 2, true, attn::Generator(51));
  layer.set_rope(10000.0, T);
  layer.set_window(W);
  layer.eval();
  attn::Generator data(52);
  const auto x = kv_cache_random<3, double>({2, T, 6}, data);
  auto ring = attn::KVCache<double>::with_window(2, 2, 4, W);
  EXPECT_EQ(ring.window(), W);
  EXPECT_EQ(ring.capacity(), W);
  auto plain = attn::KVCache<double>(2, 2, 4, T);
  EXPECT_EQ(plain.window(), 0);
  const auto chunks = kv_cache_prefill_then_single(T, 5);
  kv_cache_run(layer, x, chunks, ring);
  kv_cache_run(layer, x, chunks, plain);
  EXPECT_EQ(ring.size(), T);
  EXPECT_EQ(ring.held(), W);
  EXPECT_EQ(ring.capacity(), W);
  EXPECT_EQ(ring.keys().shape(), (attn::Shape<4>{2, 2, W, 4}));
  EXPECT_EQ(ring.values().shape(), (attn::Shape<4>{2, 2, W, 4}));
  EXPECT_EQ(plain.held(), T);
  EXPECT_EQ(plain.keys().shape(), (attn::Shape<4>{2, 2, T, 4}));
  Index differing = 0;
  for (Index p = T - W; p < T; ++p) {
    for (Index b = 0; b < 2; ++b) {
      for (Index h = 0; h < 2; ++h) {
        for (Index d = 0; d < 4; ++d) {
          differing += ring.keys()(b, h, p % W, d) != plain.keys()(b, h, p, d);
          differing += ring.values()(b, h, p % W, d) != plain.values()(b, h, p, d);
        }
      }
    }
  }
  EXPECT_EQ(differing, 0) << "the ring's slot p % W holds position p, as the plain cache does";
}

// reset() starts a new sequence: the same outputs as a fresh cache (a ring's stale slots are
// never read), storage kept.
TEST(KVCache, ResetStartsANewSequence) {
  const Index T = 30;
  attn::Generator data(61);
  const auto first = kv_cache_random<3, double>({2, T, 6}, data);
  const auto second = kv_cache_random<3, double>({2, T, 6}, data);
  for (const bool ring : {false, true}) {
    SCOPED_TRACE(ring ? "ring" : "plain");
    attn::GroupedQueryAttention<double> layer(6, 16, 0.0, 4, 2, true, attn::Generator(62));
    layer.set_rope(10000.0, T);
    layer.set_window(4);
    layer.eval();
    const attn_test::LayerScales scales =
        attn_test::layer_scales(attn::state_dict(layer), second, nullptr, 4);
    auto used = kv_cache_for(layer, 2, T, ring);
    kv_cache_run(layer, first, kv_cache_prefill_then_single(T, 3), used);
    used.reset();
    EXPECT_EQ(used.size(), 0);
    EXPECT_EQ(used.held(), 0);
    EXPECT_EQ(used.capacity(), ring ? 4 : T);
    auto fresh = kv_cache_for(layer, 2, T, ring);
    const auto chunks = kv_cache_prefill_then_single(T, 2);
    const auto after_reset = kv_cache_run(layer, second, chunks, used);
    EXPECT_TRUE(attn_test::close_normwise(after_reset, kv_cache_run(layer, second, chunks, fresh),
                                          scales.out, kv_cache_bar<double>(), "after reset"));
    EXPECT_TRUE(attn_test::close_normwise(after_reset, layer.forward(second.view()), scales.out,
                                          kv_cache_bar<double>(), "after reset vs full"));
  }
}

// ---- Errors
// ---------------------------------------------------------------------------------------

TEST(KVCache, BadSizesAreErrors) {
  using Cache = attn::KVCache<float>;
  ATTN_EXPECT_ERROR(Cache(0, 3, 4, 8), std::invalid_argument, {"KVCache", "batch (0)"});
  ATTN_EXPECT_ERROR(Cache(1, 0, 4, 8), std::invalid_argument, {"KVCache", "kv_heads (0)"});
  ATTN_EXPECT_ERROR(Cache(1, 3, -4, 8), std::invalid_argument, {"KVCache", "head_dim (-4)"});
  ATTN_EXPECT_ERROR(Cache(1, 3, 4, 0), std::invalid_argument,
                    {"KVCache", "capacity (0) must be positive"});
  ATTN_EXPECT_ERROR(Cache(1, 3, 4, -1), std::invalid_argument, {"KVCache", "capacity (-1)"});
  ATTN_EXPECT_ERROR(Cache::with_window(1, 3, 4, 0), std::invalid_argument,
                    {"KVCache::with_window", "window (0) must be positive"});
  ATTN_EXPECT_ERROR(Cache::with_window(1, 3, 4, -3), std::invalid_argument, {"window (-3)"});
  ATTN_EXPECT_ERROR(Cache::with_window(-1, 3, 4, 2), std::invalid_argument, {"batch (-1)"});
  attn::MultiHeadAttention<float> mha(6, 12, 16, 0.0f, 3);
  ATTN_EXPECT_ERROR(mha.set_window(-2), std::invalid_argument,
                    {"MultiHeadAttention", "window (-2) must be positive, or 0 for no window"});
  EXPECT_EQ(mha.window(), 0);
  ATTN_EXPECT_ERROR(mha.make_kv_cache(2, -1), std::invalid_argument,
                    {"MultiHeadAttention::make_kv_cache", "capacity (-1)"});
  ATTN_EXPECT_ERROR(mha.make_kv_cache(0), std::invalid_argument, {"batch (0)"});
  attn::GroupedQueryAttention<float> gqa(8, 16, 0.0f, 4, 2);
  ATTN_EXPECT_ERROR(gqa.make_kv_cache(1), std::invalid_argument,
                    {"GroupedQueryAttention::make_kv_cache", "pass the capacity"});
}

TEST(KVCache, LayersMakeCachesThatFollowTheirWindow) {
  // The window lives in the layer: make_kv_cache gives a ring of its window, or plain room
  // without one; set_window(0), what window() reports without a window, removes it.
  attn::MultiHeadAttention<float> mha(6, 12, 16, 0.0f, 3);
  const auto plain = mha.make_kv_cache(2);
  EXPECT_EQ(plain.window(), 0);
  EXPECT_EQ(plain.capacity(), 16);
  EXPECT_EQ(plain.kv_heads(), 3);
  EXPECT_EQ(plain.head_dim(), 4);
  EXPECT_EQ(mha.make_kv_cache(2, 5).capacity(), 5);
  mha.set_window(4);
  const auto ring = mha.make_kv_cache(2);
  EXPECT_EQ(ring.window(), 4);
  EXPECT_EQ(ring.capacity(), 4);
  mha.set_window(0);
  EXPECT_EQ(mha.window(), 0);
  EXPECT_EQ(mha.make_kv_cache(1).window(), 0);
  // GroupedQueryAttention: kv_heads = num_kv_groups.
  attn::GroupedQueryAttention<float> gqa(8, 16, 0.0f, 4, 2);
  const auto grouped = gqa.make_kv_cache(3, 10);
  EXPECT_EQ(grouped.kv_heads(), 2);
  EXPECT_EQ(grouped.head_dim(), 4);
  EXPECT_EQ(grouped.batch(), 3);
  gqa.set_window(6);
  EXPECT_EQ(gqa.make_kv_cache(1).window(), 6);

  // A windowed layer decoding through its own cache equals its full forward.
  mha = attn::MultiHeadAttention<float>(6, 12, 16, 0.0f, 3, false, attn::Generator(9));
  mha.eval();
  mha.set_window(3);
  attn::Tensor<float, 3> x({1, 7, 6});
  attn::Generator draws(10);
  draws.normal_fill(x.data(), x.numel());
  const auto full = mha.forward(x.view());
  auto cache = mha.make_kv_cache(1);
  for (attn::Index t = 0; t < 7; ++t) {
    const auto step = mha.forward(attn::slice(x.view(), 1, t, t + 1), cache);
    for (attn::Index c = 0; c < 12; ++c) {
      EXPECT_NEAR(step(0, 0, c), full(0, t, c), 1e-5) << "position " << t;
    }
  }
}

TEST(KVCache, MisuseIsAnErrorThatLeavesTheCacheAsItWas) {
  attn::MultiHeadAttention<float> mha(6, 12, 16, 0.0f, 3, false, attn::Generator(71));
  mha.eval();
  attn::Generator data(72);
  const auto x = kv_cache_random<3, float>({2, 8, 6}, data);
  const auto chunk = [&](Index begin, Index end) { return attn::slice(x.view(), 1, begin, end); };

  // Overflow of a cache without a window.
  attn::KVCache<float> small(2, 3, 4, 6);
  mha.forward(chunk(0, 4), small);
  ATTN_EXPECT_ERROR(mha.forward(chunk(4, 7), small), std::out_of_range,
                    {"MultiHeadAttention", "holds 4 of 6 positions", "cannot take 3 more"});
  EXPECT_EQ(small.size(), 4);
  mha.forward(chunk(4, 6), small);  // exactly full is fine
  ATTN_EXPECT_ERROR(mha.forward(chunk(6, 7), small), std::out_of_range,
                    {"holds 6 of 6 positions", "cannot take 1 more"});
  attn::KVCache<float> tiny(2, 3, 4, 3);
  ATTN_EXPECT_ERROR(mha.forward(chunk(0, 4), tiny), std::out_of_range,
                    {"holds 0 of 3 positions", "cannot take 4 more"});
  EXPECT_EQ(tiny.size(), 0);

  // A batch other than the cache's.
  attn::KVCache<float> cache(2, 3, 4, 16);
  mha.forward(chunk(0, 2), cache);
  const attn::Tensor<float, 3> one_sequence(attn::Shape<3>{1, 1, 6});
  ATTN_EXPECT_ERROR(mha.forward(one_sequence.view(), cache), attn::ShapeError,
                    {"MultiHeadAttention", "batch of 2", "batch of 1"});
  EXPECT_EQ(cache.size(), 2);

  // A cache made for another layer's shape: kv heads or head_dim.
  attn::KVCache<float> other_heads(2, 2, 4, 16);
  ATTN_EXPECT_ERROR(mha.forward(chunk(0, 2), other_heads), attn::ShapeError,
                    {"holds 2 kv heads of dim 4", "this layer has 3 of dim 4", "another layer"});
  attn::KVCache<float> other_dim(2, 3, 6, 16);
  ATTN_EXPECT_ERROR(mha.forward(chunk(0, 2), other_dim), attn::ShapeError,
                    {"holds 3 kv heads of dim 6", "this layer has 3 of dim 4"});
  EXPECT_EQ(other_heads.size(), 0);
  EXPECT_EQ(other_dim.size(), 0);
  attn::GroupedQueryAttention<float> gqa(6, 12, 0.0f, 3, 1, false, attn::Generator(73));
  ATTN_EXPECT_ERROR(
      gqa.forward(chunk(0, 2), cache), attn::ShapeError,
      {"GroupedQueryAttention", "holds 3 kv heads of dim 4", "this layer has 1 of dim 4"});

  // A ring whose window is not the layer's.
  auto ring3 = attn::KVCache<float>::with_window(2, 3, 4, 3);
  ATTN_EXPECT_ERROR(mha.forward(chunk(0, 2), ring3), std::invalid_argument,
                    {"window of 3", "layer's window is 0"});
  mha.set_window(4);
  ATTN_EXPECT_ERROR(mha.forward(chunk(0, 2), ring3), std::invalid_argument,
                    {"window of 3", "layer's window is 4", "must agree"});
  EXPECT_EQ(ring3.size(), 0);

  // RoPE refuses positions past its tables, before the cache takes the chunk.
  attn::GroupedQueryAttention<float> rope(6, 12, 0.0f, 3, 1, false, attn::Generator(74));
  rope.set_rope(10000.0f, 5);
  attn::KVCache<float> long_cache(2, 1, 4, 16);
  rope.forward(chunk(0, 5), long_cache);
  ATTN_EXPECT_ERROR(rope.forward(chunk(5, 6), long_cache), std::out_of_range,
                    {"position (5)", "context_length (5)"});
  EXPECT_EQ(long_cache.size(), 5);
}

}  // namespace
