// Chapter 4 of the book in C++: the GPT model (GPT_CONFIG_124M) with the weights
// torch.manual_seed(123) gives it, its logits for the book's two-sentence batch, and text
// generated from "Hello, I am": greedily as generate_text_simple does (uncached, section 4.7),
// then with the KV cache (the book's bonus ch04/03_kv-cache), and sampled with a temperature
// and top-k (section 5.3). ctest compares the printout with the book's numbers
// (expected/11_gpt_model.txt); the speed lines vary and are not compared.
#include <attn/attn.hpp>
#include <attn/text/gpt2_tokenizer.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using attn::Index;

// PyTorch's summarised print of the (2, 4, 50257) logits: each row's first and last three
// values around "...", with PyTorch's column width (taken over the values shown).
std::string summarised(const attn::Tensor<float, 3>& logits) {
  const Index vocab = logits.size(2);
  attn::Tensor<float, 3> shown({logits.size(0), logits.size(1), 6});
  for (Index b = 0; b < logits.size(0); ++b) {
    for (Index t = 0; t < logits.size(1); ++t) {
      for (Index j = 0; j < 3; ++j) {
        shown(b, t, j) = logits(b, t, j);
        shown(b, t, 3 + j) = logits(b, t, vocab - 3 + j);
      }
    }
  }
  std::istringstream lines(attn::format_tensor(shown.view()));
  std::string out;
  for (std::string line; std::getline(lines, line);) {
    std::size_t third = 0;
    for (int comma = 0; comma < 3 && third != std::string::npos; ++comma) {
      third = line.find(',', third + (comma ? 1 : 0));
    }
    if (third != std::string::npos && line.find('[') != std::string::npos) {
      line.insert(third + 1, "  ...,");
    }
    out += line + '\n';
  }
  return out;
}

std::vector<Index> row_of(const attn::Tensor<Index, 2>& ids) {
  return {ids.data(), ids.data() + ids.size(1)};
}

// 163009536 as the book prints it, f"{total_params:,}".
std::string with_commas(Index value) {
  std::string digits = std::to_string(value);
  for (auto at = static_cast<std::ptrdiff_t>(digits.size()) - 3; at > 0; at -= 3) {
    digits.insert(static_cast<std::size_t>(at), ",");
  }
  return digits;
}

}  // namespace

int main() {
  const auto tokenizer = attn::text::Gpt2Tokenizer::from_directory(ATTN_GPT2_DATA_DIR);

  // 4.1: the batch of two texts, "Every effort moves you" and "Every day holds a".
  attn::Tensor<Index, 2> batch({2, 4});
  const std::vector<Index> first = tokenizer.encode("Every effort moves you");
  const std::vector<Index> second = tokenizer.encode("Every day holds a");
  std::copy(first.begin(), first.end(), batch.data());
  std::copy(second.begin(), second.end(), batch.data() + 4);
  std::cout << "Input batch:\n" << attn::format_tensor(batch.view()) << "\n\n";

  // 4.6: torch.manual_seed(123); model = GPTModel(GPT_CONFIG_124M); out = model(batch). The
  // book prints these logits in training mode (dropout 0.1 active), as a fresh nn.Module is.
  attn::GPTModel<float> model(attn::gpt_config_124m, attn::Generator(123));
  const attn::Tensor<float, 3> logits = model.forward(batch.view());
  std::cout << "Output shape: torch.Size([" << logits.size(0) << ", " << logits.size(1) << ", "
            << logits.size(2) << "])\n"
            << summarised(logits) << '\n';
  std::cout << "Total number of parameters: " << with_commas(attn::parameter_count(model))
            << "\n\n";

  // 4.7: model.eval(); generate_text_simple(model, encode("Hello, I am"), 6, 1024).
  model.eval();
  const std::vector<Index> hello = tokenizer.encode("Hello, I am");
  attn::Tensor<Index, 2> prompt({1, static_cast<Index>(hello.size())});
  std::copy(hello.begin(), hello.end(), prompt.data());
  const attn::Tensor<Index, 2> out = attn::generate_text_simple(model, prompt.view(), 6, 1024);
  const auto greedy = row_of(out);
  std::cout << "Output: " << attn::format_tensor(out.view()) << "\nOutput length: " << greedy.size()
            << '\n'
            << tokenizer.decode(greedy) << "\n\n";

  // The same continuation with the KV cache, and further: 50 tokens, timed.
  attn::GenerationOptions options;
  options.max_new_tokens = 50;
  attn::Generator unused;
  const auto start = std::chrono::steady_clock::now();
  const auto cached = row_of(attn::generate(model, prompt.view(), options, unused));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool same = std::equal(greedy.begin(), greedy.end(), cached.begin());
  std::cout << "With the KV cache, the first 6 tokens are " << (same ? "the same" : "DIFFERENT")
            << "\n";
  std::printf("50 tokens in %.2f s (%.1f tokens/s, %d threads)\n", seconds, 50 / seconds,
              attn::num_threads());

  // 5.3: sampled, temperature 1.4 and top-k 25, after torch.manual_seed(123): the same tokens
  // as the book's generate() draws with PyTorch.
  options.max_new_tokens = 15;
  options.sampling = {/*temperature=*/1.4, /*top_k=*/25};
  attn::Generator sampling(123);
  const attn::Tensor<Index, 2> sampled = attn::generate(model, prompt.view(), options, sampling);
  std::cout << "Sampled (temperature 1.4, top_k 25, torch.manual_seed(123)):\n"
            << attn::format_tensor(sampled.view()) << '\n'
            << tokenizer.decode(row_of(sampled)) << '\n';
}
