// The book's chapter-4 GPTModel against PyTorch (tests/fixtures/generate_gpt.py): a small
// configuration (vocab 97, context 11, emb 12, 4 heads of dim 3, 2 layers, drop_rate 0.1,
// qkv_bias both ways) built from Generator(seed) and compared with torch.manual_seed(seed);
// GPTModel(cfg): the initial state, eval logits, training-mode logits (PyTorch's dropout masks,
// drawn from the generator as the construction left it) and the gradients of that forward's
// cross-entropy; the KV-cache forward against the full forward; the book's 124M numbers, built
// from the seed inside the test; the errors.
//
// Tolerances are normwise (support/normwise.hpp): tol = rounding_tolerance<Scalar>(0, n, 8) =
// 8 eps sqrt(n), n = the vocabulary (the longest reduction: the loss's softmax, and out_head's
// rows of the gradient), c = 8 as for the layers (two implementations each rounding; measured:
// the worst comparison uses 11 % of it in float and double). The scale of each quantity is the
// float64 PyTorch result's own norm (none of them is small by cancellation; a bound through two
// blocks' LayerNorms and softmaxes would be loose by orders of magnitude), except the key
// biases' gradients, zero in exact arithmetic, which must be negligible against their terms'
// size, sum over rows of |dL/dkeys|, recorded by PyTorch.
#include "attn/models/gpt_model.hpp"
#include "attn/models/generation.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/layers/grouped_query_attention.hpp"
#include "attn/layers/multi_head_attention_combined_qkv.hpp"
#include "attn/layers/multi_head_attention_wrapper.hpp"
#include "attn/layers/self_attention_v1.hpp"
#include "attn/layers/self_attention_v2.hpp"
#include "attn/losses/cross_entropy.hpp"
#include "attn/state/state_dict.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"
#include "support/rounding.hpp"

namespace {

using attn::Index;

template <typename Scalar>
std::string gm_prefix() {
  return std::is_same_v<Scalar, double> ? "f64." : "";
}

template <typename Scalar>
double gm_tolerance(Index vocab) {
  return attn_test::rounding_tolerance<Scalar>(0, vocab, 8);
}

/// The entries whose names start with `prefix`, prefix removed.
template <typename Scalar>
attn::StateDict<Scalar> gm_entries(const attn::io::SafetensorsFile& io, const std::string& prefix) {
  attn::io::SafetensorsFile subset;
  for (const auto& [name, tensor] : io.tensors) {
    if (name.rfind(prefix, 0) == 0) subset.tensors[name.substr(prefix.size())] = tensor;
  }
  return attn::io::to_state_dict<Scalar>(subset);
}

attn::GPTConfig gm_config(const attn::io::SafetensorsFile& io) {
  attn::GPTConfig config;
  config.vocab_size = attn_test::metadata_int(io, "vocab_size");
  config.context_length = attn_test::metadata_int(io, "context_length");
  config.emb_dim = attn_test::metadata_int(io, "emb_dim");
  config.n_heads = attn_test::metadata_int(io, "n_heads");
  config.n_layers = attn_test::metadata_int(io, "n_layers");
  config.drop_rate = std::stod(io.metadata.at("drop_rate"));
  config.qkv_bias = attn_test::metadata_int(io, "qkv_bias") != 0;
  return config;
}

template <typename Scalar>
attn::GPTModel<Scalar> gm_seeded(const attn::io::SafetensorsFile& io) {
  return attn::GPTModel<Scalar>(gm_config(io),
                                attn::Generator(attn_test::metadata_int(io, "seed")));
}

/// Mean cross-entropy of logits (B, T, V) against targets (B, T), and its gradient.
template <typename Scalar>
Scalar gm_loss(const attn::Tensor<Scalar, 3>& logits, const attn::Tensor<Index, 2>& targets,
               attn::Tensor<Scalar, 3>& grad) {
  const Index rows = logits.size(0) * logits.size(1), vocab = logits.size(2);
  grad = attn::Tensor<Scalar, 3>(logits.shape());
  return attn::cross_entropy(attn::reshape<2>(logits.view(), {rows, vocab}),
                             attn::reshape<1>(targets.view(), {rows}),
                             attn::reshape<2>(grad.view(), {rows, vocab}));
}

const char* const gm_cases[] = {"gpt_small_bias0", "gpt_small_bias1"};

template <typename Scalar>
class GPTModelTyped : public ::testing::Test {};
using GmScalars = ::testing::Types<float, double>;
// (The empty name generator keeps -Wpedantic quiet.)
TYPED_TEST_SUITE(GPTModelTyped, GmScalars, );

TEST(GPTModelSeeded, HoldsTorchManualSeedsWeightsUnderTheBooksNames) {
  const auto io = attn_test::load_io("gpt_small_bias0");
  const auto model = gm_seeded<float>(io);
  const auto expected = gm_entries<float>(io, "state.");
  const auto state = attn::state_dict(model);
  ASSERT_EQ(state.size(), expected.size());  // every name, the blocks' att.mask buffers included
  for (const auto& [name, tensor] : expected) {
    ASSERT_EQ(state.count(name), 1u) << "no entry " << name;
    ASSERT_EQ(state.at(name).shape, tensor.shape) << name;
    // Uniforms times their bound, or torch.randn's normals (Sleef's log, sin and cos in
    // PyTorch's AVX2 build, the C library's here): within 4 eps of the tensor's size.
    EXPECT_TRUE(attn_test::close_normwise(state.at(name).values, tensor.values,
                                          attn_test::frobenius(tensor.values),
                                          4 * attn_test::epsilon<float>(), name));
  }
  EXPECT_EQ(state.count("trf_blocks.1.att.mask"), 1u);
  EXPECT_EQ(state.count("out_head.bias"), 0u);
}

TYPED_TEST(GPTModelTyped, EvalLogitsMatchPyTorch) {
  using Scalar = TypeParam;
  for (const char* name : gm_cases) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    auto model = gm_seeded<Scalar>(io);  // float64: torch's draws under set_default_dtype
    model.eval();
    const auto ids = attn_test::fixture_indices<2>(io, "ids");
    const auto expected =
        attn_test::fixture_tensor<Scalar, 3>(io, gm_prefix<Scalar>() + "eval.logits");
    const auto scale =
        attn_test::frobenius(attn_test::fixture_tensor<double, 3>(io, "f64.eval.logits"));
    const double tol = gm_tolerance<Scalar>(model.config().vocab_size);
    EXPECT_TRUE(
        attn_test::close_normwise(model.forward(ids.view()), expected, scale, tol, "logits"));
    // forward_last: the last position's row.
    const auto last = model.forward_last(ids.view());
    ASSERT_EQ(last.shape(), (attn::Shape<2>{ids.size(0), model.config().vocab_size}));
    const auto expected_last = attn::select(expected.view(), 1, ids.size(1) - 1);
    EXPECT_TRUE(attn_test::close_normwise(last, expected_last, scale, tol, "last logits"));
  }
}

TYPED_TEST(GPTModelTyped, TrainingLogitsAndGradientsMatchPyTorch) {
  // The first forward after construction, in training mode: drop_emb, then each block's
  // attention weights and shortcut branches, with PyTorch's masks from the generator as the
  // construction left it; then the gradient of F.cross_entropy w.r.t. every parameter.
  using Scalar = TypeParam;
  for (const char* name : gm_cases) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    auto model = gm_seeded<Scalar>(io);
    ASSERT_TRUE(model.is_training());
    const auto ids = attn_test::fixture_indices<2>(io, "ids");
    const auto targets = attn_test::fixture_indices<2>(io, "targets");
    const std::string p = gm_prefix<Scalar>();
    const double tol = gm_tolerance<Scalar>(model.config().vocab_size);
    typename attn::GPTModel<Scalar>::Cache cache;
    attn::zero_grad(model);
    const auto logits = model.forward(ids.view(), cache);
    const auto reference_logits = attn_test::fixture_tensor<double, 3>(io, "f64.train.logits");
    EXPECT_TRUE(attn_test::close_normwise(
        logits, attn_test::fixture_tensor<Scalar, 3>(io, p + "train.logits"),
        attn_test::frobenius(reference_logits), tol, "training logits"));
    // Dropout was on: the training logits are far from the eval ones.
    EXPECT_FALSE(attn_test::close_normwise(
        reference_logits, attn_test::fixture_tensor<double, 3>(io, "f64.eval.logits"),
        attn_test::frobenius(reference_logits), 0.01));
    attn::Tensor<Scalar, 3> grad;
    const Scalar loss = gm_loss(logits, targets, grad);
    const double expected_loss = attn_test::fixture_tensor<double, 1>(io, p + "train.loss")(0);
    EXPECT_NEAR(double(loss), expected_loss, tol * expected_loss) << "loss";
    const auto expected = gm_entries<Scalar>(io, p + "grad.");
    if (expected.empty()) continue;  // this case holds the other precision's gradients
    model.backward(cache, grad.view());
    const auto reference = gm_entries<double>(io, p);  // gradients and key-bias term sizes
    Index compared = 0;
    for (const auto& [parameter, gradient] : attn::gradients(model)) {
      ASSERT_EQ(expected.count(parameter), 1u) << "PyTorch has no gradient for " << parameter;
      const auto& theirs = expected.at(parameter).values;
      const auto vanishing = reference.find("scale." + parameter);
      if (vanishing != reference.end()) {
        const double scale = vanishing->second.values.at(0);
        EXPECT_TRUE(attn_test::negligible(gradient.values, scale, tol, parameter + " (attn)"));
        EXPECT_TRUE(attn_test::negligible(theirs, scale, tol, parameter + " (PyTorch)"));
      } else {
        EXPECT_TRUE(attn_test::close_normwise(gradient.values, theirs, attn_test::frobenius(theirs),
                                              tol, parameter));
      }
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<Index>(expected.size()));
  }
}

/// Full forward of ids (B, T) against prefill with `prefill` tokens, then one at a time through
/// a KV cache; also forward_last through the cache.
template <typename Scalar>
void gm_check_cache(const attn::GPTModel<Scalar>& model, const attn::Tensor<Index, 2>& ids,
                    Index prefill) {
  SCOPED_TRACE("prefill " + std::to_string(prefill));
  const auto full = model.forward(ids.view());
  const double scale = attn_test::frobenius(full);
  const double tol = gm_tolerance<Scalar>(model.config().vocab_size);
  auto cache = model.make_kv_cache(ids.size(0));
  EXPECT_EQ(cache.capacity(), model.config().context_length);
  attn::Tensor<Scalar, 3> stepped(full.shape());
  attn::Tensor<Scalar, 2> last_rows({ids.size(0) * ids.size(1), model.config().vocab_size});
  for (int pass = 0; pass < 2; ++pass) {  // the second after reset(): the cache is reusable
    cache.reset();
    EXPECT_EQ(cache.size(), 0);
    for (Index start = 0; start < ids.size(1);) {
      const Index n = start == 0 ? prefill : 1;
      const auto chunk_ids = attn::slice(ids.view(), 1, start, start + n);
      if (pass == 0) {
        const auto logits = model.forward(chunk_ids, cache);
        for (Index b = 0; b < ids.size(0); ++b) {
          for (Index t = 0; t < n; ++t) {
            for (Index v = 0; v < logits.size(2); ++v) stepped(b, start + t, v) = logits(b, t, v);
          }
        }
      } else {
        const auto last = model.forward_last(chunk_ids, cache);
        ASSERT_EQ(last.size(0), ids.size(0));
        for (Index b = 0; b < ids.size(0); ++b) {
          for (Index v = 0; v < last.size(1); ++v) {
            EXPECT_NEAR(double(last(b, v)), double(full(b, start + n - 1, v)), tol * scale);
          }
        }
      }
      start += n;
      EXPECT_EQ(cache.size(), start);
    }
  }
  EXPECT_TRUE(attn_test::close_normwise(stepped, full, scale, tol, "cached logits"));
}

TYPED_TEST(GPTModelTyped, KVCacheDecodeEqualsTheFullForward) {
  using Scalar = TypeParam;
  for (const char* name : gm_cases) {
    SCOPED_TRACE(name);
    const auto io = attn_test::load_io(name);
    auto model = gm_seeded<Scalar>(io);
    model.eval();
    // The whole context: the fixture's ids (2, 7) and 4 more tokens.
    const auto short_ids = attn_test::fixture_indices<2>(io, "ids");
    const Index T = model.config().context_length;
    attn::Tensor<Index, 2> ids({2, T});
    for (Index b = 0; b < 2; ++b) {
      for (Index t = 0; t < T; ++t) ids(b, t) = t < short_ids.size(1) ? short_ids(b, t) : 5 * t + b;
    }
    for (const Index prefill : {Index{1}, Index{4}, T}) gm_check_cache(model, ids, prefill);
    // And against PyTorch directly: the fixture's ids, prefill 3 then one by one.
    auto cache = model.make_kv_cache(2);
    const auto expected =
        attn_test::fixture_tensor<Scalar, 3>(io, gm_prefix<Scalar>() + "eval.logits");
    const auto first = model.forward(attn::slice(short_ids.view(), 1, 0, 3), cache);
    EXPECT_TRUE(attn_test::close_normwise(
        first, attn::slice(expected.view(), 1, 0, 3), attn_test::frobenius(expected),
        gm_tolerance<Scalar>(model.config().vocab_size), "prefill against PyTorch"));
  }
}

/// Whether every drawn parameter of `layer` is zero (the LayerNorms' scales are ones and their
/// shifts zeros whatever the generator; the causal mask buffers are derived).
template <typename Layer>
bool gpt_all_zero(const Layer& layer) {
  bool zero = true;
  for (const auto& [name, tensor] : attn::state_dict(layer)) {
    if (name.find("mask") != std::string::npos) continue;
    const bool scale = name.size() > 5 && name.compare(name.size() - 5, 5, "scale") == 0;
    for (const double value : tensor.values) zero = zero && value == (scale ? 1 : 0);
  }
  return zero;
}

TEST(GPTModelSkipInit, LayersBuiltWithSkipInitAreZerosAndDrawNothing) {
  // attn::skip_init (PyTorch's torch.nn.utils.skip_init): every parameter that would be drawn
  // is zero and nothing is drawn, in each format, for a loader that fills them all next. A model
  // built from a generator has no zero weights (they are drawn), so the check can fail.
  const attn::GPTConfig config{97, 11, 12, 4, 2, 0.1, true};
  for (const auto format : {attn::WeightFormat::scalar, attn::WeightFormat::bfloat16}) {
    const attn::GPTModel<float> model(config, attn::skip_init, format);
    EXPECT_TRUE(gpt_all_zero(model));
    EXPECT_EQ(model.tok_emb().weight_format(), format);
    EXPECT_FALSE(gpt_all_zero(attn::GPTModel<float>(config, attn::Generator(1), format)));
  }
  // The model's dropout generator starts at the default seed, as a fresh Generator() does.
  const attn::GPTModel<double> skipped(config, attn::skip_init);
  attn::Generator fresh;
  EXPECT_EQ(skipped.dropout_generator().uniform<double>(), fresh.uniform<double>());
  // The attention layers the book builds on its way there, too.
  EXPECT_TRUE(gpt_all_zero(attn::SelfAttentionV1<float>(3, 2, attn::skip_init)));
  EXPECT_TRUE(gpt_all_zero(attn::SelfAttentionV2<float>(3, 2, false, attn::skip_init)));
  EXPECT_TRUE(gpt_all_zero(
      attn::MultiHeadAttentionCombinedQKV<float>(6, 6, 4, 0.0f, 2, true, attn::skip_init)));
  EXPECT_TRUE(
      gpt_all_zero(attn::GroupedQueryAttention<float>(8, 8, 0.0f, 4, 2, true, attn::skip_init)));
  EXPECT_TRUE(gpt_all_zero(
      attn::MultiHeadAttentionWrapper<float>(3, 2, 4, 0.0f, 2, true, attn::skip_init)));
}

TEST(GPTModelErrors, NamesBadIdsTooLongInputsAndMisusedCaches) {
  attn::GPTModel<float> model({11, 6, 8, 2, 1, 0.1, false}, attn::Generator(5));
  const attn::Tensor<Index, 2> bad({2, 3}, {1, 2, 3, 4, 11, 5});
  ATTN_EXPECT_ERROR(model.forward(bad.view()), attn::IndexError,
                    {"token id 11", "batch 1", "position 1", "[0, 11)"});
  const attn::Tensor<Index, 2> negative({1, 2}, {0, -1});
  ATTN_EXPECT_ERROR(model.forward(negative.view()), std::out_of_range,
                    {"token id -1", "batch 0", "position 1"});
  const attn::Tensor<Index, 2> long_ids({1, 7});
  ATTN_EXPECT_ERROR(model.forward(long_ids.view()), attn::ShapeError,
                    {"7 tokens", "context_length is 6", "crop", "last 6 tokens"});
  // The cache forward is for generation: eval mode.
  auto cache = model.make_kv_cache(1);
  const attn::Tensor<Index, 2> one({1, 1}, {3});
  ATTN_EXPECT_ERROR(model.forward(one.view(), cache), std::invalid_argument,
                    {"training mode", "eval()"});
  model.eval();
  const attn::Tensor<Index, 2> five({1, 5}, {1, 2, 3, 4, 5});
  model.forward(five.view(), cache);
  EXPECT_EQ(cache.size(), 5);
  model.forward_last(one.view(), cache);
  ATTN_EXPECT_ERROR(model.forward_last(one.view(), cache), std::out_of_range,
                    {"holds 6 positions", "context_length (6)", "reset()"});
  EXPECT_EQ(cache.size(), 6);  // nothing cached by the failed call
  const attn::Tensor<Index, 2> pair({2, 1}, {1, 2});
  cache.reset();
  ATTN_EXPECT_ERROR(model.forward(pair.view(), cache), attn::ShapeError,
                    {"batch of 1", "batch of 2"});
  const attn::Tensor<Index, 2> bad_one({1, 2}, {4, 12});
  ATTN_EXPECT_ERROR(model.forward(bad_one.view(), cache), std::out_of_range,
                    {"token id 12", "batch 0, position 1"});
  EXPECT_EQ(cache.size(), 0);
  ATTN_EXPECT_ERROR(model.make_kv_cache(1, 7), std::invalid_argument,
                    {"capacity (7)", "context_length (6)"});
  auto small = model.make_kv_cache(1, 2);
  ATTN_EXPECT_ERROR(model.forward(attn::Tensor<Index, 2>({1, 3}).view(), small), std::out_of_range,
                    {"holds 0 of 2 positions", "cannot take 3"});
  ATTN_EXPECT_ERROR(model.forward_last(attn::Tensor<Index, 2>({1, 0}).view()), attn::ShapeError,
                    {"at least one token"});
  ATTN_EXPECT_ERROR(attn::GPTModel<float>({11, 6, 9, 2, 1, 0.1, false}), std::invalid_argument,
                    {"GPTModel", "emb_dim (9) must be divisible by n_heads (2)"});
  ATTN_EXPECT_ERROR(attn::GPTModel<float>({11, 6, 8, 2, 0, 0.1, false}), std::invalid_argument,
                    {"GPTModel", "n_layers (0) must be positive"});
}

TEST(GPTModelConfig, Gpt124MIsTheBooksConfig) {
  constexpr attn::GPTConfig c = attn::gpt_config_124m;
  static_assert(c.vocab_size == 50257 && c.context_length == 1024 && c.emb_dim == 768 &&
                    c.n_heads == 12 && c.n_layers == 12 && !c.qkv_bias,
                "GPT_CONFIG_124M");
  EXPECT_EQ(c.drop_rate, 0.1);
  EXPECT_EQ(attn::GPTModel<float>::Config::gpt2_124m().vocab_size, 50257);
}

// The book's section 4.6, printed by python3-torch 1.13 (generate_gpt.py --book):
// torch.manual_seed(123); model = GPTModel(GPT_CONFIG_124M); model(batch), in training mode.
// The first and last three logits of each (sequence, token), as the book prints them.
constexpr float gm_book_logits[8][6] = {
    {0.36126107f, 0.42224857f, -0.07112890f, 0.34830016f, 0.46611345f, -0.28377846f},
    {-0.17916816f, -0.56603521f, -0.94850928f, 0.04772485f, 0.51808667f, -0.31680235f},
    {0.71196651f, 0.03319308f, 0.10850500f, 0.10176709f, -0.43274111f, -0.25528896f},
    {-1.00756407f, 0.34183002f, -0.11901307f, 0.71951604f, 0.40229017f, 0.05323860f},
    {-0.25640404f, 0.09002651f, 0.03353029f, 0.26591575f, 0.44538283f, -0.68055964f},
    {0.12296389f, 0.36528492f, -0.20736775f, 0.77048862f, 0.27104723f, 0.22457607f},
    {1.05577421f, 1.03175533f, -0.27997619f, 0.69361889f, 0.32051444f, -0.31777588f},
    {-0.15651631f, 0.39263517f, 0.32882610f, 1.26301944f, -0.18584761f, 0.03876211f},
};

// Then 4.7, on the same model (one 163M-parameter build for both): model.eval();
// generate_text_simple(model, encode("Hello, I am"), max_new_tokens=6, context_size=1024) gives
// "Hello, I am Featureiman Byeswickattribute argue", the book's ids; the KV cache gives them too.
TEST(GPTModelBook, Gpt124MGivesTheBooksLogitsAndTextFromSeed123) {
  const auto start = std::chrono::steady_clock::now();
  attn::GPTModel<float> model(attn::gpt_config_124m, attn::Generator(123));
  EXPECT_EQ(attn::parameter_count(model), 163009536);  // the book's total_params
  const attn::Tensor<Index, 2> batch({2, 4}, {6109, 3626, 6100, 345, 6109, 1110, 6622, 257});
  ASSERT_TRUE(model.is_training());  // the book never calls eval() before printing these
  const auto logits = model.forward(batch.view());
  ASSERT_EQ(logits.shape(), (attn::Shape<3>{2, 4, 50257}));
  // To the 4 decimals the book prints: within half a unit of the 4th decimal of PyTorch's
  // float32 values (which the book's printout rounds).
  double worst = 0;
  for (Index b = 0; b < 2; ++b) {
    for (Index t = 0; t < 4; ++t) {
      const float* expected = gm_book_logits[b * 4 + t];
      for (int k = 0; k < 6; ++k) {
        const Index v = k < 3 ? k : 50257 - 6 + k;
        const double error = std::abs(double(logits(b, t, v)) - double(expected[k]));
        worst = std::max(worst, error);
        EXPECT_LT(error, 5e-5) << "logits[" << b << ", " << t << ", " << v << "]";
      }
    }
  }

  model.eval();
  const attn::Tensor<Index, 2> hello_i_am({1, 4}, {15496, 11, 314, 716});
  const std::vector<Index> book{15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267};
  const auto ids_of = [](const attn::Tensor<Index, 2>& ids) {
    return std::vector<Index>(ids.data(), ids.data() + ids.numel());
  };
  EXPECT_EQ(ids_of(attn::generate_text_simple(model, hello_i_am.view(), 6, 1024)), book);
  attn::GenerationOptions cached;
  cached.max_new_tokens = 6;
  attn::Generator unused;
  EXPECT_EQ(ids_of(attn::generate(model, hello_i_am.view(), cached, unused)), book);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ 124M    ] worst |attn - PyTorch| over the 48 values " << worst
            << "; built and ran in " << seconds << " s\n";
}

// The same model with its Linear weights and token embedding in bfloat16 (set_weight_format):
// what PyTorch 1.13 gives with every nn.Linear weight and tok_emb rounded by .bfloat16()
// (tests/fixtures/generate_gpt.py --bfloat16): the eval logits of "Hello, I am"'s last position
// (first and last three), to 4 decimals, with and without the KV cache, and the same greedy
// continuation, which here is float32's too. A model built in bfloat16 from the start (never
// holding its float weights) has the same weights: the same logits, bit for bit.
TEST(GPTModelBook, Gpt124MWithBFloat16WeightsGivesPyTorchsLogitsAndText) {
  attn::GPTModel<float> model(attn::gpt_config_124m, attn::Generator(123));
  model.eval();
  model.set_weight_format(attn::WeightFormat::bfloat16);
  EXPECT_EQ(model.tok_emb().weight_format(), attn::WeightFormat::bfloat16);
  EXPECT_EQ(model.out_head().weight_format(), attn::WeightFormat::bfloat16);
  EXPECT_EQ(model.trf_blocks()[11].ff().layer2().weight_format(), attn::WeightFormat::bfloat16);
  const float expected[6] = {-0.64102960f, -0.14531387f, -0.13962559f,
                             1.58404899f,  -0.95351404f, -0.87423992f};
  const attn::Tensor<Index, 2> hello_i_am({1, 4}, {15496, 11, 314, 716});
  auto cache = model.make_kv_cache(1);
  const auto uncached = model.forward_last(hello_i_am.view());
  const auto cached = model.forward_last(hello_i_am.view(), cache);
  for (int k = 0; k < 6; ++k) {
    const Index v = k < 3 ? k : 50257 - 6 + k;
    EXPECT_LT(std::abs(double(uncached(0, v)) - double(expected[k])), 5e-5) << "logit " << v;
    EXPECT_LT(std::abs(double(cached(0, v)) - double(expected[k])), 5e-5) << "cached " << v;
  }
  {
    attn::GPTModel<float> built(attn::gpt_config_124m, attn::Generator(123),
                                attn::WeightFormat::bfloat16);
    built.eval();
    const auto logits = built.forward_last(hello_i_am.view());
    for (Index v = 0; v < logits.numel(); ++v) {
      ASSERT_EQ(logits.data()[v], uncached.data()[v]) << "built in bfloat16: logit " << v;
    }
  }
  const std::vector<Index> pytorch{15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267};
  const auto ids_of = [](const attn::Tensor<Index, 2>& ids) {
    return std::vector<Index>(ids.data(), ids.data() + ids.numel());
  };
  EXPECT_EQ(ids_of(attn::generate_text_simple(model, hello_i_am.view(), 6, 1024)), pytorch);
  attn::GenerationOptions options;
  options.max_new_tokens = 6;
  attn::Generator unused;
  EXPECT_EQ(ids_of(attn::generate(model, hello_i_am.view(), options, unused)), pytorch);
}

}  // namespace
