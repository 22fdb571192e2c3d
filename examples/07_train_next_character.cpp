// Trains attn's AttentionLanguageModel (token + positional embedding -> MultiHeadAttention ->
// linear head) to predict the next character of a short story, with AdamW and cross-entropy,
// then writes a few lines in the style it learned. Every gradient comes from attn's own
// backward passes; nothing here is special to the example.
//
//   attn_train_next_character [--steps 600] [--text examples/data/small-text-sample.txt]
#include <algorithm>
#include <attn/attn.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>  // isatty

#ifndef ATTN_EXAMPLE_TEXT
#define ATTN_EXAMPLE_TEXT "examples/data/small-text-sample.txt"
#endif

namespace {

using attn::Index;
using Model = attn::AttentionLanguageModel<float>;

/// The characters of the text, numbered in sorted order: the model's vocabulary.
struct Vocabulary {
  std::vector<char> characters;
  std::map<char, Index> ids;

  explicit Vocabulary(const std::string& text) : characters(text.begin(), text.end()) {
    std::sort(characters.begin(), characters.end());
    characters.erase(std::unique(characters.begin(), characters.end()), characters.end());
    for (std::size_t i = 0; i < characters.size(); ++i) ids[characters[i]] = Index(i);
  }
  Index size() const { return Index(characters.size()); }
};

/// `batch` windows of `length + 1` characters starting at random offsets of `ids`: inputs are
/// the first `length`, targets the same shifted by one (each position predicts the next).
struct Batch {
  attn::Tensor<Index, 2> inputs, targets;
};

Batch sample_batch(const std::vector<Index>& ids, Index batch, Index length,
                   attn::Generator& generator) {
  Batch result{attn::Tensor<Index, 2>({batch, length}), attn::Tensor<Index, 2>({batch, length})};
  const auto starts = static_cast<double>(ids.size()) - static_cast<double>(length);
  for (Index b = 0; b < batch; ++b) {
    const auto start = static_cast<std::size_t>(generator.uniform<double>() * starts);
    for (Index t = 0; t < length; ++t) {
      result.inputs(b, t) = ids[start + std::size_t(t)];
      result.targets(b, t) = ids[start + std::size_t(t) + 1];
    }
  }
  return result;
}

/// Mean cross-entropy of a batch; with a cache, also backpropagates into the model.
float loss_of(Model& model, const Batch& batch, Model::Cache* cache) {
  const auto logits =
      cache ? model.forward(batch.inputs.view(), *cache) : model.forward(batch.inputs.view());
  const Index rows = logits.size(0) * logits.size(1), vocab = logits.size(2);
  const auto flat = attn::reshape<2>(logits.view(), {rows, vocab});
  const auto targets = attn::reshape<1>(batch.targets.view(), {rows});
  if (!cache) return attn::cross_entropy(flat, targets);
  attn::Tensor<float, 3> grad(logits.shape());
  const float loss =
      attn::cross_entropy(flat, targets, attn::reshape<2>(grad.view(), {rows, vocab}));
  model.backward(*cache, grad.view());
  return loss;
}

/// A bar redrawn in place on a terminal; one line per 100 steps when stderr is a file or pipe.
void progress_bar(Index step, Index steps, float loss) {
  static const bool terminal = isatty(fileno(stderr)) != 0;
  if (!terminal && step % 100 != 0 && step != steps) return;
  constexpr int width = 40;
  const int filled = static_cast<int>(width * step / steps);
  std::fprintf(stderr, "%s[%s%s] step %4ld/%ld  loss %.4f%s", terminal ? "\r" : "",
               std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
               static_cast<long>(step), static_cast<long>(steps), static_cast<double>(loss),
               terminal && step != steps ? "" : "\n");
}

/// Continues `prompt` by sampling one character at a time from the model's softmax.
std::string generate(const Model& model, const Vocabulary& vocabulary, const std::string& prompt,
                     Index count, attn::Generator& generator) {
  std::vector<Index> ids;
  for (char c : prompt) ids.push_back(vocabulary.ids.at(c));
  std::string text = prompt;
  const Index context = model.config().context_length;
  for (Index n = 0; n < count; ++n) {
    const Index length = std::min<Index>(Index(ids.size()), context);
    attn::Tensor<Index, 2> window({1, length});
    std::copy(ids.end() - length, ids.end(), window.data());
    const auto logits = model.forward(window.view());
    Eigen::VectorXf scores = attn::as_matrix(attn::select(logits.view(), 0, 0)).row(length - 1);
    Eigen::VectorXf probabilities = (scores.array() - scores.maxCoeff()).exp();
    probabilities /= probabilities.sum();
    float u = generator.uniform<float>();
    Index next = 0;
    while (next + 1 < vocabulary.size() && (u -= probabilities(next)) > 0) ++next;
    ids.push_back(next);
    text += vocabulary.characters[std::size_t(next)];
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("attn_train_next_character",
                       "Train a one-layer attention model on next-character prediction.");
  cli.add_options()  //
      ("text", "text file to learn",
       cxxopts::value<std::string>()->default_value(ATTN_EXAMPLE_TEXT))(
          "steps", "AdamW steps", cxxopts::value<long>()->default_value("600"))              //
      ("batch", "sequences per step", cxxopts::value<long>()->default_value("16"))           //
      ("lr", "AdamW learning rate", cxxopts::value<float>()->default_value("0.005"))         //
      ("threads", "threads (0: attn's default)", cxxopts::value<int>()->default_value("0"))  //
      ("seed", "seed of initialisation and batches",
       cxxopts::value<unsigned>()->default_value("1"))  //
      ("h,help", "print this help");
  cxxopts::ParseResult options;
  try {
    options = cli.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& error) {
    std::fprintf(stderr, "%s\n%s", error.what(), cli.help().c_str());
    return 2;
  }
  if (options.count("help")) {
    std::printf("%s", cli.help().c_str());
    return 0;
  }
  const Index steps = options["steps"].as<long>(), batch_size = options["batch"].as<long>();
  if (steps < 1 || batch_size < 1) {
    std::fprintf(stderr, "--steps and --batch must be at least 1\n");
    return 2;
  }
  if (options["threads"].as<int>() > 0) attn::set_num_threads(options["threads"].as<int>());

  const std::string path = options["text"].as<std::string>();
  std::ifstream file(path, std::ios::binary);
  const std::string text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  const Model::Config config{/*vocab_size=*/0, /*context_length=*/32, /*d_model=*/64,
                             /*num_heads=*/4};
  if (!file || Index(text.size()) < 2 * (config.context_length + 1)) {
    std::fprintf(stderr, "cannot read enough text from '%s'\n", path.c_str());
    return 1;
  }

  // The first 90% of the text trains; the last 10% only measures (held-out loss).
  const Vocabulary vocabulary(text);
  std::vector<Index> ids;
  for (char c : text) ids.push_back(vocabulary.ids.at(c));
  const auto split = static_cast<std::ptrdiff_t>(ids.size() * 9 / 10);
  const std::vector<Index> train(ids.begin(), ids.begin() + split),
      held_out(ids.begin() + split, ids.end());

  attn::Generator generator(options["seed"].as<unsigned>());
  Model model({vocabulary.size(), config.context_length, config.d_model, config.num_heads},
              generator);
  attn::AdamW<float>::Options adamw;
  adamw.lr = options["lr"].as<float>();
  attn::AdamW<float> optimiser(adamw);
  optimiser.add(model);

  attn::Generator held_out_generator(7);
  std::vector<Batch> held_out_batches;
  for (int i = 0; i < 8; ++i) {
    held_out_batches.push_back(
        sample_batch(held_out, 16, config.context_length, held_out_generator));
  }
  const auto held_out_loss = [&] {
    float sum = 0;
    for (const auto& batch : held_out_batches) sum += loss_of(model, batch, nullptr);
    return sum / float(held_out_batches.size());
  };

  std::printf("text: %s, %zu characters, vocabulary of %ld\n", path.c_str(), text.size(),
              static_cast<long>(vocabulary.size()));
  std::printf(
      "model: context %ld, d_model %ld, %ld heads, %ld parameters; AdamW lr %g, batch %ld\n",
      static_cast<long>(config.context_length), static_cast<long>(config.d_model),
      static_cast<long>(config.num_heads), static_cast<long>(attn::parameter_count(model)),
      static_cast<double>(adamw.lr), static_cast<long>(batch_size));
  const float held_out_before = held_out_loss();

  const auto start = std::chrono::steady_clock::now();
  Model::Cache cache;
  std::vector<float> losses;
  for (Index step = 1; step <= steps; ++step) {
    const Batch batch = sample_batch(train, batch_size, config.context_length, generator);
    optimiser.zero_grad();
    losses.push_back(loss_of(model, batch, &cache));
    optimiser.step();
    if (step % 10 == 0 || step == steps) progress_bar(step, steps, losses.back());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // One batch's loss is noisy: report means over the first and last (up to) 20 steps.
  const auto window = std::min<std::ptrdiff_t>(20, std::ptrdiff_t(losses.size()));
  const auto mean = [](auto begin, auto end) {
    return static_cast<double>(std::accumulate(begin, end, 0.f)) / double(end - begin);
  };
  std::printf(
      "training loss: %.4f (first %ld steps) -> %.4f (last %ld)  [log(vocabulary) = %.4f]\n",
      mean(losses.begin(), losses.begin() + window), static_cast<long>(window),
      mean(losses.end() - window, losses.end()), static_cast<long>(window),
      std::log(static_cast<double>(vocabulary.size())));
  std::printf("held-out loss: %.4f before -> %.4f after  (%.1f s, %d threads)\n",
              static_cast<double>(held_out_before), static_cast<double>(held_out_loss()), seconds,
              attn::num_threads());
  model.eval();
  attn::Generator sampler(42);
  std::printf("\nsample: %s\n", generate(model, vocabulary, "The ", 200, sampler).c_str());
  return 0;
}
