// How fast is GPT-2's tokenizer (attn::text::Gpt2Tokenizer) on one thread? Bytes of text per
// second (the bytes_per_second counter) for encode and decode on English text:
//  - Sample: examples/data/small-text-sample.txt repeated to 1 MiB;
//  - Generated: 4 MiB of sentences drawn (attn::Generator, seeded) from that file's words, so
//    the word sequence does not repeat;
//  - LongWord: 1 MiB of letters without a space, one piece merged by the heap path, the worst case;
//  - Pretokenize: the PCRE2 split alone, the share of encode the regular expression takes.
// Decode counts the bytes it writes.
#include <benchmark/benchmark.h>

#include <attn/random/generator.hpp>
#include <attn/text/gpt2_tokenizer.hpp>
#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const attn::text::Gpt2Tokenizer& bench_tokenizer() {
  static const attn::text::Gpt2Tokenizer tokenizer =
      attn::text::Gpt2Tokenizer::from_directory(ATTN_GPT2_DATA_DIR);
  return tokenizer;
}

std::string sample_text() {
  std::ifstream in(ATTN_SAMPLE_TEXT, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (contents.str().empty()) throw std::runtime_error("cannot read " ATTN_SAMPLE_TEXT);
  return contents.str();
}

const std::string& sample_repeated() {
  static const std::string text = [] {
    const std::string sample = sample_text();
    std::string out;
    while (out.size() < (std::size_t{1} << 20)) out += sample;
    return out;
  }();
  return text;
}

// Sentences of 4 to 19 of the sample's words (lower-cased, punctuation stripped), capitalised,
// with commas, full stops, question marks and paragraph breaks, to 4 MiB.
const std::string& generated_english() {
  static const std::string text = [] {
    std::vector<std::string> words;
    std::istringstream in(sample_text());
    for (std::string word; in >> word;) {
      std::string clean;
      for (const char c : word) {
        if (std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '\'') {
          clean += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
      }
      if (!clean.empty()) words.push_back(clean);
    }
    attn::Generator generator(2024);
    std::string out;
    while (out.size() < (std::size_t{4} << 20)) {
      const std::uint32_t length = 4 + generator.next_u32() % 16;
      for (std::uint32_t w = 0; w < length; ++w) {
        std::string word = words[generator.next_u32() % words.size()];
        if (w == 0) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
        out += word;
        if (w + 1 < length) out += generator.next_u32() % 9 == 0 ? ", " : " ";
      }
      out += generator.next_u32() % 7 == 0 ? "? " : ". ";
      if (generator.next_u32() % 6 == 0) out += "\n\n";
    }
    return out;
  }();
  return text;
}

const std::string& long_word() {
  static const std::string text = [] {
    attn::Generator generator(7);
    std::string out(std::size_t{1} << 20, 'a');
    for (char& c : out) c = static_cast<char>('a' + generator.next_u32() % 26);
    return out;
  }();
  return text;
}

void run_encode(benchmark::State& state, const std::string& text) {
  const auto& tokenizer = bench_tokenizer();
  std::size_t ids = 0;
  for (auto _ : state) {
    const std::vector<attn::Index> encoded = tokenizer.encode_ordinary(text);
    ids = encoded.size();
    benchmark::DoNotOptimize(encoded.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
  state.counters["bytes/token"] = static_cast<double>(text.size()) / static_cast<double>(ids);
}

void BM_Gpt2Encode_Sample(benchmark::State& state) {
  run_encode(state, sample_repeated());
}
void BM_Gpt2Encode_Generated(benchmark::State& state) {
  run_encode(state, generated_english());
}
void BM_Gpt2Encode_LongWord(benchmark::State& state) {
  run_encode(state, long_word());
}

void BM_Gpt2Pretokenize_Generated(benchmark::State& state) {
  const attn::text::detail::Pretokenizer pretokenizer(attn::text::detail::gpt2_pattern);
  const std::string& text = generated_english();
  for (auto _ : state) {
    std::size_t pieces = 0;
    pretokenizer.split(text, [&](std::string_view) { ++pieces; });
    benchmark::DoNotOptimize(pieces);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
}

void run_decode(benchmark::State& state, const std::string& text) {
  const auto& tokenizer = bench_tokenizer();
  const std::vector<attn::Index> ids = tokenizer.encode_ordinary(text);
  for (auto _ : state) {
    const std::string decoded = tokenizer.decode(ids);
    benchmark::DoNotOptimize(decoded.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
}

void BM_Gpt2Decode_Sample(benchmark::State& state) {
  run_decode(state, sample_repeated());
}
void BM_Gpt2Decode_Generated(benchmark::State& state) {
  run_decode(state, generated_english());
}

}  // namespace

BENCHMARK(BM_Gpt2Encode_Sample)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gpt2Encode_Generated)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gpt2Encode_LongWord)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gpt2Pretokenize_Generated)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gpt2Decode_Sample)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Gpt2Decode_Generated)->Unit(benchmark::kMillisecond);
