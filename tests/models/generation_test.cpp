// Generation: the next-token choice (greedy, temperature, top-k) against the book's generate()
// run by PyTorch (tests/fixtures/generate_sampling.py), draw for draw; generation with the KV
// cache against recomputing every step, token for token. (The book's chapter-4 continuation of
// "Hello, I am" by the seeded GPT-2 124M is in gpt_model_test.cpp, on the model built there.)
#include <gtest/gtest.h>

#include <algorithm>
#include <attn/attn.hpp>
#include <attn/models/generation.hpp>
#include <attn/models/next_token.hpp>
#include <string>
#include <vector>

#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

template <typename Scalar>
std::string sampling_suffix() {
  return std::is_same_v<Scalar, float> ? "f32" : "f64";
}

// Every option of the fixture, CALLS draws in a row after one seeding, as the script does.
template <typename Scalar>
void check_sampling_against_torch() {
  const auto file = attn_test::read_fixture("sampling.io.safetensors");
  const std::string suffix = sampling_suffix<Scalar>();
  const auto logits = attn_test::fixture_tensor<Scalar, 3>(file, "logits." + suffix);
  const attn::Index calls = logits.size(0), batch = logits.size(1);
  for (const char* temperature : {"0.0", "0.7", "1.4"}) {
    for (const int top_k : {0, 1, 5}) {
      for (const int seed : {123, 7}) {
        const std::string name = "ids." + suffix + ".t" + temperature + ".k" +
                                 std::to_string(top_k) + ".seed" + std::to_string(seed);
        SCOPED_TRACE(name);
        const auto expected = attn_test::fixture_indices<2>(file, name);
        attn::Generator generator(static_cast<std::uint64_t>(seed));
        const attn::SamplingOptions options{std::stod(temperature), top_k};
        for (attn::Index c = 0; c < calls; ++c) {
          const auto chosen = attn::next_tokens(
              attn::TensorView<const Scalar, 2>(attn::select(logits.view(), 0, c)), options,
              generator);
          for (attn::Index b = 0; b < batch; ++b) {
            EXPECT_EQ(chosen[static_cast<std::size_t>(b)], expected(c, b))
                << "call " << c << ", row " << b;
          }
        }
      }
    }
  }
}

TEST(NextTokens, EqualsTorchGenerateStepFloat) {
  check_sampling_against_torch<float>();
}
TEST(NextTokens, EqualsTorchGenerateStepDouble) {
  check_sampling_against_torch<double>();
}

TEST(NextTokens, GreedyTakesTheFirstLargestAndDrawsNothing) {
  const attn::Tensor<float, 2> logits({1, 4}, {1.0f, 3.0f, 3.0f, -2.0f});
  attn::Generator generator(5), untouched(5);
  EXPECT_EQ(attn::next_tokens(logits.view(), {}, generator), std::vector<attn::Index>{1});
  EXPECT_EQ(generator.next_u32(), untouched.next_u32());
}

TEST(NextTokens, TopOneIsGreedyWhateverTheTemperature) {
  const attn::Tensor<double, 2> logits({2, 5}, {0.1, 0.2, 4.0, 0.3, 0.0,  //
                                                -1.0, 2.5, 2.4, 0.0, 1.0});
  attn::Generator generator(11);
  for (int draw = 0; draw < 20; ++draw) {
    EXPECT_EQ(attn::next_tokens(logits.view(), {3.0, 1}, generator),
              (std::vector<attn::Index>{2, 1}));
  }
}

TEST(NextTokens, BadInput) {
  attn::Generator generator;
  const attn::Tensor<float, 2> logits({1, 3}, {0.0f, 1.0f, 2.0f});
  ATTN_EXPECT_ERROR(attn::next_tokens(logits.view(), {-1.0, 0}, generator), std::invalid_argument,
                    {"temperature (-1)", ">= 0"});
  ATTN_EXPECT_ERROR(attn::next_tokens(logits.view(), {1.0, 4}, generator), std::invalid_argument,
                    {"top_k (4)", "[0, 3]"});
  const float inf = std::numeric_limits<float>::infinity();
  const attn::Tensor<float, 2> masked({1, 3}, {-inf, -inf, -inf});
  ATTN_EXPECT_ERROR(attn::next_tokens(masked.view(), {1.0, 0}, generator), std::invalid_argument,
                    {"row 0", "no finite value"});
  const attn::Tensor<float, 2> nan({1, 2}, {0.0f, std::nanf("")});
  ATTN_EXPECT_ERROR(attn::next_tokens(nan.view(), {}, generator), std::invalid_argument, {"NaN"});
}

// A small seeded GPT: 11 positions, so generations run past the context.
template <typename Scalar>
attn::GPTModel<Scalar> small_generation_gpt() {
  attn::GPTModel<Scalar> model({/*vocab_size=*/29, /*context_length=*/11, /*emb_dim=*/16,
                                /*n_heads=*/4, /*n_layers=*/2, /*drop_rate=*/0.1,
                                /*qkv_bias=*/true},
                               attn::Generator(321));
  model.eval();
  return model;
}

std::vector<attn::Index> generated_row(const attn::Tensor<attn::Index, 2>& ids, attn::Index row) {
  return {ids.data() + row * ids.size(1), ids.data() + (row + 1) * ids.size(1)};
}

// The cache changes the work, not the tokens: greedy and sampled, prompts shorter and longer
// than the context, runs that pass the context (the cache then re-prefills, as the crop does).
// With bfloat16 weights the steps of a few rows stream the 2-byte weights and the longer
// uncached ones widen blocks of them for a GEMM: the same tokens still.
template <typename Scalar>
void check_cached_equals_uncached(attn::WeightFormat format = attn::WeightFormat::scalar) {
  auto model = small_generation_gpt<Scalar>();
  model.set_weight_format(format);
  const attn::Tensor<attn::Index, 2> short_prompt({2, 3}, {1, 2, 3, 7, 0, 28});
  attn::Tensor<attn::Index, 2> long_prompt({1, 15});
  for (attn::Index i = 0; i < 15; ++i) long_prompt(0, i) = (5 * i + 3) % 29;
  const attn::Tensor<attn::Index, 2>* const prompts[] = {&short_prompt, &long_prompt};
  for (const auto* prompt : prompts) {
    for (const attn::SamplingOptions sampling :
         {attn::SamplingOptions{}, attn::SamplingOptions{1.3, 0}, attn::SamplingOptions{0.8, 5}}) {
      for (const attn::Index context : {0, 4}) {
        attn::GenerationOptions options;
        options.max_new_tokens = 25;
        options.context_size = context;
        options.sampling = sampling;
        attn::Generator cached_draws(99), uncached_draws(99);
        options.use_cache = true;
        const auto cached = attn::generate(model, prompt->view(), options, cached_draws);
        options.use_cache = false;
        const auto uncached = attn::generate(model, prompt->view(), options, uncached_draws);
        ASSERT_EQ(cached.shape(), (attn::Shape<2>{prompt->size(0), prompt->size(1) + 25}));
        for (attn::Index b = 0; b < cached.size(0); ++b) {
          EXPECT_EQ(generated_row(cached, b), generated_row(uncached, b))
              << "T " << prompt->size(1) << ", temperature " << sampling.temperature << ", top_k "
              << sampling.top_k << ", context_size " << context << ", row " << b;
        }
      }
    }
  }
}

TEST(Generate, CachedEqualsUncachedFloat) {
  check_cached_equals_uncached<float>();
}
TEST(Generate, CachedEqualsUncachedDouble) {
  check_cached_equals_uncached<double>();
}
TEST(Generate, CachedEqualsUncachedWithBFloat16Weights) {
  check_cached_equals_uncached<float>(attn::WeightFormat::bfloat16);
  check_cached_equals_uncached<double>(attn::WeightFormat::bfloat16);
}

TEST(Generate, StopsAtEosWithoutAppendingIt) {
  const auto model = small_generation_gpt<double>();
  const attn::Tensor<attn::Index, 2> prompt({1, 2}, {4, 9});
  attn::Generator unused;
  const auto greedy = attn::generate_text_simple(model, prompt.view(), 6, 11);
  attn::GenerationOptions options;
  options.max_new_tokens = 6;
  options.eos_id = greedy(0, 4);  // the third generated token
  std::vector<attn::Index> streamed;
  options.on_tokens = [&](const std::vector<attn::Index>& ids) { streamed.push_back(ids[0]); };
  const auto stopped = attn::generate(model, prompt.view(), options, unused);
  ASSERT_EQ(stopped.size(1), 4);
  EXPECT_EQ(generated_row(stopped, 0),
            (std::vector<attn::Index>{4, 9, greedy(0, 2), greedy(0, 3)}));
  EXPECT_EQ(streamed, (std::vector<attn::Index>{greedy(0, 2), greedy(0, 3)}));
}

/// Two prompts of different lengths, {4, 9, 1} and {7, 2}, batched with the shorter padded on
/// the left (Hugging Face's way), and each alone.
struct LeftPaddedPrompts {
  attn::Tensor<attn::Index, 2> ids{{2, 3}, {4, 9, 1, 0, 7, 2}};
  attn::Tensor<bool, 2> padding = [] {
    attn::Tensor<bool, 2> flags({2, 3});
    flags(1, 0) = true;
    return flags;
  }();
  attn::Tensor<attn::Index, 2> first{{1, 3}, {4, 9, 1}}, second{{1, 2}, {7, 2}};

  /// Each batched row's generated tokens are those its prompt generated alone.
  void expect_rows_as_alone(const attn::Tensor<attn::Index, 2>& batched,
                            const attn::Tensor<attn::Index, 2>& alone_first,
                            const attn::Tensor<attn::Index, 2>& alone_second) const {
    const auto generated = [](const attn::Tensor<attn::Index, 2>& out, attn::Index row,
                              attn::Index prompt) {
      const auto all = generated_row(out, row);
      return std::vector<attn::Index>(all.begin() + prompt, all.end());
    };
    EXPECT_EQ(generated(batched, 0, 3), generated(alone_first, 0, 3));
    EXPECT_EQ(generated(batched, 1, 3), generated(alone_second, 0, 2));
  }
};

TEST(Generate, LeftPaddedBatchGivesEachPromptItsOwnTokens) {
  // Two prompts of different lengths, the shorter padded on the left (Hugging Face's way):
  // each row's generated tokens are those of its prompt alone, cached or not, and a window
  // that crops the context (context_size 4 < 3 + 5) does not change that.
  const auto model = small_generation_gpt<double>();
  const LeftPaddedPrompts prompts;
  for (const attn::Index context : {0, 4}) {
    for (const bool cached : {true, false}) {
      SCOPED_TRACE(std::string(cached ? "cached" : "uncached") + ", context_size " +
                   std::to_string(context));
      attn::GenerationOptions options;
      options.max_new_tokens = 5;
      options.use_cache = cached;
      options.context_size = context;
      prompts.expect_rows_as_alone(
          attn::generate(model, prompts.ids.view(), prompts.padding.view(), options),
          attn::generate(model, prompts.first.view(), options),
          attn::generate(model, prompts.second.view(), options));
    }
  }
  attn::Tensor<bool, 2> wrong({2, 2});
  attn::GenerationOptions options;
  options.max_new_tokens = 1;
  ATTN_EXPECT_ERROR(attn::generate(model, prompts.ids.view(), wrong.view(), options),
                    attn::ShapeError, {"padding has shape (2, 2)", "(2, 3)"});
}

TEST(Generate, RowsWithTheirOwnGeneratorsSampleAsAlone) {
  // Sampling (temperature 0.9, top-k 5) with one generator per row: each row of a left-padded
  // batch draws what its prompt draws alone from the same seed, cached or not.
  const auto model = small_generation_gpt<double>();
  const LeftPaddedPrompts prompts;
  attn::GenerationOptions options;
  options.max_new_tokens = 6;
  options.sampling.temperature = 0.9;
  options.sampling.top_k = 5;
  for (const bool cached : {true, false}) {
    options.use_cache = cached;
    std::vector<attn::Generator> generators{attn::Generator(11), attn::Generator(12)};
    attn::Generator g11(11), g12(12);
    prompts.expect_rows_as_alone(
        attn::generate(model, prompts.ids.view(), prompts.padding.view(), options, generators),
        attn::generate(model, prompts.first.view(), options, g11),
        attn::generate(model, prompts.second.view(), options, g12));
  }
  std::vector<attn::Generator> one(1);
  ATTN_EXPECT_ERROR(attn::generate(model, prompts.ids.view(), prompts.padding.view(), options, one),
                    std::invalid_argument, {"1 generators for a batch of 2"});
}

TEST(Generate, PaddedForwardAndGradientsAreThoseOfTheSequenceAlone) {
  // forward(ids, padding): the real tokens take positions 0, 1, ... and see no pad, so their
  // logits, and the gradients of a loss on them, are the unpadded sequence's (float64, to
  // rounding: 1e-12 of the norms).
  auto model = small_generation_gpt<double>();  // eval mode: no dropout
  const attn::Tensor<attn::Index, 2> padded({1, 4}, {0, 0, 7, 2}), alone({1, 2}, {7, 2});
  attn::Tensor<bool, 2> padding({1, 4});
  padding(0, 0) = padding(0, 1) = true;
  const auto logits = model.forward(padded.view(), padding.view());
  const auto expected = model.forward(alone.view());
  const auto real = attn::slice(logits.view(), 1, 2, 4);
  EXPECT_TRUE(attn_test::close_normwise(real, expected, attn_test::frobenius(expected), 1e-12));
  attn::Tensor<double, 3> grad_alone(expected.shape()), grad_padded(logits.shape());
  attn::Generator draws(3);
  draws.normal_fill(grad_alone.data(), grad_alone.numel());
  for (attn::Index t = 0; t < 2; ++t) {
    for (attn::Index v = 0; v < logits.size(2); ++v) grad_padded(0, t + 2, v) = grad_alone(0, t, v);
  }
  attn::GPTModel<double>::Cache cache;
  attn::zero_grad(model);
  model.forward(padded.view(), cache, padding.view());
  model.backward(cache, grad_padded.view());
  const auto padded_grads = attn::gradients(model);
  attn::zero_grad(model);
  attn::GPTModel<double>::Cache plain;
  model.forward(alone.view(), plain);
  model.backward(plain, grad_alone.view());
  // One problem scale, the largest gradient's norm: the key biases' are zero in exact
  // arithmetic (softmax ignores a per-row shift), so their own norms are rounding noise.
  const auto alone_grads = attn::gradients(model);
  double scale = 0;
  for (const auto& entry : alone_grads) {
    scale = std::max(scale, attn_test::frobenius(entry.second.values));
  }
  for (const auto& [name, gradient] : alone_grads) {
    EXPECT_TRUE(attn_test::close_normwise(padded_grads.at(name).values, gradient.values, scale,
                                          1e-12, name));
  }
}

TEST(Generate, GreedyNeedsNoGenerator) {
  // Greedy decoding draws nothing: generate(model, ids, options) gives the book's
  // generate_text_simple tokens, cached or not; sampling without a Generator says what to pass.
  const auto model = small_generation_gpt<double>();
  const attn::Tensor<attn::Index, 2> prompt({2, 2}, {4, 9, 1, 7});
  const auto simple = attn::generate_text_simple(model, prompt.view(), 5, 11);
  attn::GenerationOptions options;
  options.max_new_tokens = 5;
  for (const bool cached : {true, false}) {
    options.use_cache = cached;
    const auto greedy = attn::generate(model, prompt.view(), options);
    EXPECT_EQ(generated_row(greedy, 0), generated_row(simple, 0));
    EXPECT_EQ(generated_row(greedy, 1), generated_row(simple, 1));
  }
  options.sampling.temperature = 0.7;
  ATTN_EXPECT_ERROR(attn::generate(model, prompt.view(), options), std::invalid_argument,
                    {"temperature 0.7", "pass a Generator"});
}

TEST(Generate, BadInput) {
  auto model = small_generation_gpt<float>();
  const attn::Tensor<attn::Index, 2> prompt({1, 2}, {4, 9});
  attn::Generator generator;
  attn::GenerationOptions options;
  options.max_new_tokens = -1;
  ATTN_EXPECT_ERROR(attn::generate(model, prompt.view(), options, generator), std::invalid_argument,
                    {"max_new_tokens (-1)"});
  options.max_new_tokens = 1;
  options.context_size = 12;
  ATTN_EXPECT_ERROR(attn::generate(model, prompt.view(), options, generator), std::invalid_argument,
                    {"context_size (12)", "context_length (11)"});
  options.context_size = 0;
  const attn::Tensor<attn::Index, 2> empty({1, 0});
  ATTN_EXPECT_ERROR(attn::generate(model, empty.view(), options, generator), attn::ShapeError,
                    {"at least one token"});
  const attn::Tensor<attn::Index, 2> bad({1, 2}, {4, 29});
  ATTN_EXPECT_ERROR(attn::generate(model, bad.view(), options, generator), attn::IndexError,
                    {"29"});
  model.train();
  ATTN_EXPECT_ERROR(attn::generate(model, prompt.view(), options, generator), std::invalid_argument,
                    {"training mode", "eval()"});
}

}  // namespace
