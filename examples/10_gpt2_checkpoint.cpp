// OpenAI's GPT-2 in the book's chapter-4 GPTModel (the book's ch05 loads the same weights):
// the Hugging Face hub's model.safetensors (+ config.json beside it) is read, mapped to the book's
// names and layout, and asked for the next token of a prompt given as token ids.
// docs/checkpoints.md shows how to download the real `gpt2` files.
//
//   attn_10_gpt2_checkpoint [model.safetensors] [--heads N] [--text "Hello, I am"] [id ...]
//
// Without a path it loads the tiny random GPT-2 of attn's tests (tests/fixtures/gpt2_tiny) when
// built by attn's CMake, and gpt2/model.safetensors (the hub's folder, downloaded as
// docs/checkpoints.md shows) when compiled on its own.
// --heads is needed when there is no config.json beside the file; --text encodes the prompt
// with GPT-2's tokenizer when attn::text was built (its tables decode the top tokens too).
// Without ids or text the prompt is the book's "Hello, I am" (15496 11 314 716) for a model of
// GPT-2's vocabulary, and 1 2 3 otherwise.
#include <algorithm>
#include <attn/io/gpt2_checkpoint.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#ifdef ATTN_EXAMPLE_GPT2_DATA
#include <attn/text/gpt2_tokenizer.hpp>
#endif
#ifndef ATTN_EXAMPLE_GPT2_TINY  // compiled outside attn's CMake: the hub's folder layout
#define ATTN_EXAMPLE_GPT2_TINY "gpt2/model.safetensors"
#endif

namespace {

using attn::Index;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Arguments {
  std::string path = ATTN_EXAMPLE_GPT2_TINY;
  std::optional<Index> heads;
  std::string text;
  std::vector<Index> ids;
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  bool path_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--heads" || arg == "--text") && i + 1 < argc) {
      if (arg == "--heads") {
        args.heads = std::stol(argv[++i]);
      } else {
        args.text = argv[++i];
      }
    } else if (!arg.empty() &&
               std::all_of(arg.begin(), arg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      args.ids.push_back(std::stol(arg));
    } else if (!path_given) {
      args.path = arg;
      path_given = true;
    } else {
      throw std::invalid_argument("unexpected argument '" + arg +
                                  "' (usage: attn_10_gpt2_checkpoint "
                                  "[model.safetensors] [--heads N] [--text \"...\"] [id ...])");
    }
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) try {
  Arguments args = parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  const attn::GPTModel<float> model = attn::io::load_gpt2_checkpoint<float>(args.path, args.heads);
  const auto& config = model.config();
  std::printf("loaded GPT-2 from %s in %.2f s\n", args.path.c_str(), seconds_since(start));
  std::printf(
      "  vocab_size %td, context_length %td, emb_dim %td, n_heads %td, n_layers %td; "
      "%td parameters (out_head counted apart from tok_emb)\n",
      config.vocab_size, config.context_length, config.emb_dim, config.n_heads, config.n_layers,
      attn::parameter_count(model));

#ifdef ATTN_EXAMPLE_GPT2_DATA
  std::optional<attn::text::Gpt2Tokenizer> tokenizer;
  if (config.vocab_size == 50257) {
    tokenizer = attn::text::Gpt2Tokenizer::from_directory(ATTN_EXAMPLE_GPT2_DATA);
  }
  if (!args.text.empty() && tokenizer) args.ids = tokenizer->encode(args.text);
#endif
  if (!args.text.empty() && args.ids.empty()) {
    std::fprintf(stderr, "--text needs GPT-2's tokenizer (attn::text) and a GPT-2 vocabulary\n");
    return 1;
  }
  if (args.ids.empty()) {
    args.ids = config.vocab_size == 50257 ? std::vector<Index>{15496, 11, 314, 716}
                                          : std::vector<Index>{1, 2, 3};
  }
  const auto spelled = [&](Index id) {
#ifdef ATTN_EXAMPLE_GPT2_DATA
    if (tokenizer) return "\"" + tokenizer->decode(std::vector<Index>{id}) + "\"";
#endif
    static_cast<void>(id);
    return std::string();
  };

  const Index T = static_cast<Index>(args.ids.size());
  attn::Tensor<Index, 2> ids({1, T});
  std::copy(args.ids.begin(), args.ids.end(), ids.data());
  std::printf("prompt ids:");
  for (const Index id : args.ids) std::printf(" %td", id);
  std::printf("\n");

  const auto forward_start = std::chrono::steady_clock::now();
  const attn::Tensor<float, 3> logits = model.forward(ids.view());  // (1, T, vocab_size)
  std::printf("forward of %td tokens: %.3f s\n", T, seconds_since(forward_start));
  const Index V = config.vocab_size;
  std::printf("argmax at each position:");
  for (Index t = 0; t < T; ++t) {
    const float* row = logits.data() + t * V;
    std::printf(" %td", static_cast<Index>(std::max_element(row, row + V) - row));
  }
  std::printf("\n");

  // The last position's distribution over the next token: softmax in double, the top five.
  const float* last = logits.data() + (T - 1) * V;
  const double peak = *std::max_element(last, last + V);
  double total = 0;
  for (Index v = 0; v < V; ++v) total += std::exp(last[v] - peak);
  std::vector<Index> order(static_cast<std::size_t>(V));
  std::iota(order.begin(), order.end(), Index{0});
  const auto top = std::min<Index>(5, V);
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](Index a, Index b) { return last[a] > last[b]; });
  std::printf("next token %td; the top %td:\n", order[0], top);
  for (Index k = 0; k < top; ++k) {
    const Index id = order[static_cast<std::size_t>(k)];
    const std::string text = spelled(id);
    std::printf("  id %6td  logit %8.4f  p %.4f%s%s\n", id, last[id],
                std::exp(last[id] - peak) / total, text.empty() ? "" : "  ", text.c_str());
  }
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "attn_10_gpt2_checkpoint: %s\n", error.what());
  return 1;
}
