// attn/models/generation.hpp: text generation with a GPTModel, as the book's generate_text_simple
// (chapter 4.7: greedy) and generate (chapter 5.3: temperature, top-k, eos) do it, with or
// without a KV cache and with the same results either way.
//
// The book crops the input to the last context_size tokens before every step. With learned
// absolute positions (pos_emb) a cached token's keys and values depend on its position, so once
// the cache holds context_size tokens it cannot slide: the cached path then prefills the last
// context_size tokens again, which is exactly what the uncached crop computes, and keeps doing
// so for every further token (each step then costs a full forward, as without a cache).
#ifndef ATTN_MODELS_GENERATION_HPP
#define ATTN_MODELS_GENERATION_HPP

#include <algorithm>
#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

#include "attn/config.hpp"
#include "attn/models/gpt_model.hpp"
#include "attn/models/next_token.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// The book's generate() arguments, and how to run it.
struct GenerationOptions {
  /// Tokens to append to every sequence (fewer if eos_id stops it).
  Index max_new_tokens = 0;
  /// The most tokens the model sees at once; 0 means the model's context_length.
  Index context_size = 0;
  /// Temperature and top-k; the default is greedy decoding.
  SamplingOptions sampling;
  /// Stop, without appending it, when every sequence's next token is this id (the book stops
  /// its batch of one this way).
  std::optional<Index> eos_id;
  /// Keep each block's keys and values between steps (same tokens, far less work per token).
  bool use_cache = true;
  /// Called with each step's chosen ids (one per sequence) before they are appended, e.g. to
  /// print text as it comes.
  std::function<void(const std::vector<Index>&)> on_tokens;
};

namespace detail {

template <typename Scalar>
Index validated_context(const GPTModel<Scalar>& model, const TensorView<const Index, 2>& ids,
                        const GenerationOptions& options) {
  const Index model_context = model.config().context_length;
  if (options.max_new_tokens < 0) {
    throw std::invalid_argument(
        concat("generate: max_new_tokens (", options.max_new_tokens, ") must be >= 0"));
  }
  if (options.context_size < 0 || options.context_size > model_context) {
    throw std::invalid_argument(concat("generate: context_size (", options.context_size,
                                       ") must be in [0, context_length (", model_context,
                                       ")] (0 means context_length)"));
  }
  if (ids.size(0) < 1 || ids.size(1) < 1) {
    throw ShapeError(concat("generate: ids ", to_string(ids.shape()),
                            " must hold at least one token of at least one sequence"));
  }
  if (model.is_training() && model.config().drop_rate > 0) {
    throw std::invalid_argument(
        "generate: the model is in training mode, so its dropout is active; call eval() "
        "first, as the book does before generating");
  }
  return options.context_size == 0 ? model_context : options.context_size;
}

/// The last `count` columns of every row (the book's idx[:, -count:]), as a view.
inline TensorView<const Index, 2> last_tokens(const Tensor<Index, 2>& ids, Index count) {
  const Index tokens = ids.size(1), kept = std::min(tokens, count);
  return slice(TensorView<const Index, 2>(ids.view()), 1, tokens - kept, tokens);
}

inline Tensor<Index, 2> append_column(const Tensor<Index, 2>& ids,
                                      const std::vector<Index>& column) {
  const Index batch = ids.size(0), tokens = ids.size(1);
  Tensor<Index, 2> longer({batch, tokens + 1});
  for (Index b = 0; b < batch; ++b) {
    std::copy(ids.data() + b * tokens, ids.data() + (b + 1) * tokens,
              longer.data() + b * (tokens + 1));
    longer(b, tokens) = column[static_cast<std::size_t>(b)];
  }
  return longer;
}

}  // namespace detail

namespace detail {

/// generate(), with the prompts' padding (B, T) when `padding` is given: the flags of the tokens
/// the model sees (the last `context` ones) go with them, and generated tokens are not padding.
/// `choose(logits)` picks each step's tokens, (B, V) -> B ids.
template <typename Scalar, typename Choose>
Tensor<Index, 2> generate_tokens(const GPTModel<Scalar>& model,
                                 const TensorView<const Index, 2>& ids,
                                 const TensorView<const bool, 2>& padding,
                                 const GenerationOptions& options, Choose&& choose) {
  const Index context = validated_context(model, ids, options);
  const bool padded = padding.data() != nullptr;
  if (padded && padding.shape() != ids.shape()) {
    throw ShapeError(concat("generate: padding has shape ", to_string(padding.shape()),
                            " but ids have ", to_string(ids.shape()), "; one flag per token"));
  }
  Tensor<Index, 2> sequence(ids);
  // Every token's flag so far, room for the generated ones (false: not padding).
  Tensor<bool, 2> flags({ids.size(0), ids.size(1) + options.max_new_tokens});
  for (Index b = 0; padded && b < ids.size(0); ++b) {
    for (Index t = 0; t < ids.size(1); ++t) flags(b, t) = padding(b, t);
  }
  const auto last_flags = [&](Index count) {  // the flags of the last `count` tokens
    const Index n = sequence.size(1);
    return slice(TensorView<const bool, 2>(flags.view()), 1, n - count, n);
  };
  std::optional<GPTKVCache<Scalar>> cache;
  if (options.use_cache) cache.emplace(model.make_kv_cache(ids.size(0), context));
  // The logits of the next position: from the cropped sequence (prefilling an empty or full
  // cache), or, with a cache that has room, from the newest token alone.
  const auto next_logits = [&]() {
    const Index kept = std::min(sequence.size(1), context);
    if (!cache) {
      return padded ? model.forward_last(last_tokens(sequence, context), last_flags(kept))
                    : model.forward_last(last_tokens(sequence, context));
    }
    if (cache->size() == 0 || cache->size() == context) {
      cache->reset();
      return padded ? model.forward_last(last_tokens(sequence, context), *cache, last_flags(kept))
                    : model.forward_last(last_tokens(sequence, context), *cache);
    }
    return padded
               ? model.forward_last(last_tokens(sequence, 1), *cache, last_flags(cache->size() + 1))
               : model.forward_last(last_tokens(sequence, 1), *cache);
  };
  for (Index step = 0; step < options.max_new_tokens; ++step) {
    const Tensor<Scalar, 2> logits = next_logits();
    const std::vector<Index> chosen = choose(TensorView<const Scalar, 2>(logits.view()));
    if (options.eos_id && std::all_of(chosen.begin(), chosen.end(),
                                      [&](Index id) { return id == *options.eos_id; })) {
      break;
    }
    if (options.on_tokens) options.on_tokens(chosen);
    sequence = append_column(sequence, chosen);
  }
  return sequence;
}

/// generate_tokens drawing every row from one generator.
template <typename Scalar>
Tensor<Index, 2> generate_tokens(const GPTModel<Scalar>& model,
                                 const TensorView<const Index, 2>& ids,
                                 const TensorView<const bool, 2>& padding,
                                 const GenerationOptions& options, Generator& generator) {
  return generate_tokens(model, ids, padding, options,
                         [&](const TensorView<const Scalar, 2>& logits) {
                           return next_tokens(logits, options.sampling, generator);
                         });
}

}  // namespace detail

/// Generates up to options.max_new_tokens tokens after each sequence of `ids`, as the book's
/// generate(): the input is cropped to its last context_size tokens, the last position's
/// logits choose the next token (next_tokens: greedy, or temperature and top-k with draws from
/// `generator`, equal to torch.multinomial's under the same seed), and the token is appended.
/// The KV cache (options.use_cache) gives the same tokens as recomputing every step.
/// @param ids (B, T) token ids, T >= 1, any strides.
/// @return (B, T + n) ids: the input followed by the n <= max_new_tokens generated tokens.
/// @throws std::invalid_argument for a bad option or a model in training mode with dropout;
///         ShapeError for empty ids; IndexError for an id outside the vocabulary.
template <typename Scalar>
Tensor<Index, 2> generate(const GPTModel<Scalar>& model, const TensorView<const Index, 2>& ids,
                          const GenerationOptions& options, Generator& generator) {
  return detail::generate_tokens(model, ids, {}, options, generator);
}

/// generate() for a batch of prompts of different lengths, padded on the left as Hugging
/// Face's GPT-2 batches them: padding (B, T), true = a pad token (any id). Each sequence sees
/// its own tokens at their own positions (GPTModel::forward(ids, padding)), so greedy decoding
/// gives each row the tokens its prompt gives alone. (Sampling draws the rows' tokens in turn
/// from one generator, so a row's draws depend on the batch; the overload with one generator
/// per row samples each row as alone.)
/// @throws as generate, and ShapeError if padding is not ids' shape.
template <typename Scalar>
Tensor<Index, 2> generate(const GPTModel<Scalar>& model, const TensorView<const Index, 2>& ids,
                          const TensorView<const bool, 2>& padding,
                          const GenerationOptions& options, Generator& generator) {
  return detail::generate_tokens(model, ids, padding, options, generator);
}

/// generate() for greedy decoding (options.sampling.temperature 0), which draws nothing, so it
/// needs no Generator.
/// @throws std::invalid_argument, naming the four-argument form, if options ask for sampling;
///         otherwise as generate.
template <typename Scalar>
Tensor<Index, 2> generate(const GPTModel<Scalar>& model, const TensorView<const Index, 2>& ids,
                          const GenerationOptions& options) {
  return generate(model, ids, {}, options);
}

/// generate() of a batch whose rows draw from their own generators, generators[b] for sequence
/// b (padding as above, or empty): a row then samples what its prompt samples alone,
/// generate(model, prompt, options, generators[b]), whatever else is in the batch.
/// @throws std::invalid_argument unless there is one generator per sequence; otherwise as
///         generate.
template <typename Scalar>
Tensor<Index, 2> generate(const GPTModel<Scalar>& model, const TensorView<const Index, 2>& ids,
                          const TensorView<const bool, 2>& padding,
                          const GenerationOptions& options, std::vector<Generator>& generators) {
  if (static_cast<Index>(generators.size()) != ids.size(0)) {
    throw std::invalid_argument(detail::concat("generate: ", generators.size(),
                                               " generators for a batch of ", ids.size(0),
                                               " sequences; one per sequence"));
  }
  return detail::generate_tokens(
      model, ids, padding, options, [&](const TensorView<const Scalar, 2>& logits) {
        std::vector<Index> chosen;
        for (Index b = 0; b < logits.size(0); ++b) {
          chosen.push_back(next_tokens(slice(logits, 0, b, b + 1), options.sampling,
                                       generators[static_cast<std::size_t>(b)])[0]);
        }
        return chosen;
      });
}

/// generate(model, ids, padding, options, generator) for greedy decoding, without a Generator.
/// @throws as generate(model, ids, options).
template <typename Scalar>
Tensor<Index, 2> generate(const GPTModel<Scalar>& model, const TensorView<const Index, 2>& ids,
                          const TensorView<const bool, 2>& padding,
                          const GenerationOptions& options) {
  if (options.sampling.temperature != 0) {
    throw std::invalid_argument(detail::concat(
        "generate: sampling (temperature ", options.sampling.temperature,
        ") draws random numbers: pass a Generator, generate(model, ids, options, generator)"));
  }
  Generator unused;  // greedy decoding never draws
  return detail::generate_tokens(model, ids, padding, options, unused);
}

/// The book's generate_text_simple (chapter 4.7): greedy, no cache, the input cropped to its
/// last context_size tokens before every step.
/// @throws as generate.
template <typename Scalar>
Tensor<Index, 2> generate_text_simple(const GPTModel<Scalar>& model,
                                      const TensorView<const Index, 2>& idx, Index max_new_tokens,
                                      Index context_size) {
  GenerationOptions options;
  options.max_new_tokens = max_new_tokens;
  options.context_size = context_size;
  options.use_cache = false;
  Generator unused;  // greedy decoding draws nothing
  return generate(model, idx, options, unused);
}

}  // namespace attn

#endif  // ATTN_MODELS_GENERATION_HPP
