// Gpt2Tokenizer against tiktoken's "gpt2" encoding: the goldens below (tiktoken's own ids),
// and tests/fixtures/gpt2_tokenizer_cases.json, 1,300 strings with the ids js-tiktoken gives them
// (written by tests/fixtures/generate_tokenizer.mjs). Then what no reference is needed for: any
// bytes round-trip, special tokens are refused unless allowed, bad ids and bad data files are
// errors that say what and where.
#include <gtest/gtest.h>

#include <attn/text/gpt2_tokenizer.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "attn/random/generator.hpp"
#include "support/expect_error.hpp"

namespace {

using attn::Index;
using attn::text::Gpt2Tokenizer;
using attn::text::TokenizerDataError;

const Gpt2Tokenizer& gpt2tok() {
  static const Gpt2Tokenizer tokenizer = Gpt2Tokenizer::from_directory(ATTN_GPT2_DATA_DIR);
  return tokenizer;
}

struct Gpt2TokCase {
  std::string mode;  // encode, allowed, ordinary, disallowed
  std::string text;
  std::vector<Index> ids;
};

const std::vector<Gpt2TokCase>& gpt2tok_cases() {
  static const std::vector<Gpt2TokCase> cases = [] {
    std::ifstream in(std::string(ATTN_FIXTURES_DIR) + "/gpt2_tokenizer_cases.json");
    const nlohmann::json json = nlohmann::json::parse(in);
    std::vector<Gpt2TokCase> all;
    for (const auto& entry : json.at("cases")) {
      Gpt2TokCase c;
      c.mode = entry.at("mode").get<std::string>();
      c.text = entry.at("text").get<std::string>();
      if (entry.contains("ids")) c.ids = entry.at("ids").get<std::vector<Index>>();
      all.push_back(std::move(c));
    }
    return all;
  }();
  return cases;
}

std::vector<Index> gpt2tok_encode_as(const Gpt2TokCase& c) {
  if (c.mode == "allowed") return gpt2tok().encode(c.text, {"<|endoftext|>"});
  if (c.mode == "ordinary") return gpt2tok().encode_ordinary(c.text);
  return gpt2tok().encode(c.text);
}

// ---- Goldens: tiktoken.get_encoding("gpt2") ---------------------------------------------------

TEST(Gpt2Tokenizer, GoldensEqualTiktoken) {
  const std::vector<Index> tea = {15496, 11,   466,   345,  588,  8887, 30,  220,   50256, 554,
                                  262,   4252, 18250, 8812, 2114, 286,  617, 34680, 27271, 13};
  EXPECT_EQ(gpt2tok().encode(
                "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
                {"<|endoftext|>"}),
            tea);
  EXPECT_EQ(gpt2tok().encode("Hello, I am"), (std::vector<Index>{15496, 11, 314, 716}));
  EXPECT_EQ(gpt2tok().decode(tea),
            "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.");
}

TEST(Gpt2Tokenizer, VocabularyIsGpt2s) {
  EXPECT_EQ(gpt2tok().vocab_size(), 50257);
  EXPECT_EQ(Gpt2Tokenizer::end_of_text, 50256);
  EXPECT_EQ(gpt2tok().token_bytes(Gpt2Tokenizer::end_of_text), "<|endoftext|>");
  EXPECT_EQ(gpt2tok().token_bytes(220), " ");
  EXPECT_EQ(gpt2tok().token_bytes(15496), "Hello");
  EXPECT_TRUE(gpt2tok().encode("").empty());
  EXPECT_EQ(gpt2tok().decode(std::vector<Index>{}), "");
}

// ---- Every fixture string: js-tiktoken's ids, and back ----------------------------------------

TEST(Gpt2TokenizerFixtures, EveryCaseEncodesToTiktokensIds) {
  const auto& cases = gpt2tok_cases();
  ASSERT_GE(cases.size(), 1000U);
  int checked = 0;
  int refused = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Gpt2TokCase& c = cases[i];
    SCOPED_TRACE(testing::Message()
                 << "case " << i << " (" << c.mode << ") " << nlohmann::json(c.text).dump());
    if (c.mode == "disallowed") {
      ATTN_EXPECT_ERROR(gpt2tok().encode(c.text), std::invalid_argument,
                        {"<|endoftext|>", "byte offset"});
      ++refused;
      continue;
    }
    const std::vector<Index> ids = gpt2tok_encode_as(c);
    EXPECT_EQ(ids, c.ids);
    EXPECT_EQ(gpt2tok().decode(ids), c.text);
    ++checked;
  }
  EXPECT_GE(checked, 1000);
  EXPECT_GE(refused, 50);
}

// ---- Any bytes round-trip ------------------------------------------------------------------

// A random byte string of length 0..300 biased towards what breaks UTF-8 handling: NUL, lone
// continuation bytes, lead bytes without their continuations, overlong forms, surrogates,
// code points above U+10FFFF, bytes that are never UTF-8, next to well-formed text.
std::string gpt2tok_random_bytes(attn::Generator& generator) {
  static const std::vector<std::string> pieces = {std::string(1, '\0'),
                                                  "\x80",
                                                  "\xBF",
                                                  "\xC0\xAF",
                                                  "\xC1\xBF",
                                                  "\xE0\x80\xAF",
                                                  "\xF0\x80\x80\xAF",
                                                  "\xED\xA0\x80",
                                                  "\xED\xBF\xBF",
                                                  "\xF4\x90\x80\x80",
                                                  "\xF5",
                                                  "\xFF",
                                                  "\xFE",
                                                  "\xC3",
                                                  "\xE2\x82",
                                                  "\xF0\x9F\x98",
                                                  "\xC3\xA9",
                                                  "\xE2\x82\xAC",
                                                  "\xF0\x9F\x98\x80",
                                                  "\xEF\xBB\xBF",
                                                  "\xC2\x85",
                                                  "\xE1\xA0\x8E",
                                                  " ",
                                                  "  ",
                                                  "\n",
                                                  "\r\n",
                                                  "\t",
                                                  "'s",
                                                  "'ll",
                                                  "the",
                                                  " world",
                                                  "123",
                                                  "!!",
                                                  "<|endoftext|>",
                                                  "<|endo",
                                                  "\xE3\x80\x80",
                                                  "\xC2\xA0"};
  const auto length = static_cast<std::size_t>(generator.next_u32() % 301);
  std::string s;
  while (s.size() < length) {
    const std::uint32_t kind = generator.next_u32() % 4;
    if (kind == 0) {
      s += pieces[generator.next_u32() % pieces.size()];
    } else if (kind == 1) {
      s += static_cast<char>(generator.next_u32() % 256);
    } else if (kind == 2) {
      s += static_cast<char>(0x80 + generator.next_u32() % 0x80);  // high bytes only
    } else {
      s += static_cast<char>('a' + generator.next_u32() % 26);
    }
  }
  s.resize(length);
  return s;
}

TEST(Gpt2TokenizerRoundTrip, RandomByteStringsDecodeToThemselves) {
  attn::Generator generator(20240515);
  for (int trial = 0; trial < 3000; ++trial) {
    const std::string s = gpt2tok_random_bytes(generator);
    SCOPED_TRACE(testing::Message()
                 << "trial " << trial << ", " << s.size() << " bytes "
                 << nlohmann::json(s).dump(-1, ' ', true,
                                           nlohmann::json::error_handler_t::replace));
    const std::vector<Index> ordinary = gpt2tok().encode_ordinary(s);
    ASSERT_EQ(gpt2tok().decode(ordinary), s);
    for (const Index id : ordinary) ASSERT_TRUE(id >= 0 && id < Gpt2Tokenizer::end_of_text);
    const std::vector<Index> special = gpt2tok().encode(s, {"all"});
    ASSERT_EQ(gpt2tok().decode(special), s);
    ASSERT_LE(special.size(), ordinary.size());
  }
}

TEST(Gpt2TokenizerRoundTrip, LongRunsAndIllFormedRuns) {
  // Pieces far beyond the quadratic merge's limit, and runs PCRE2 must not choke on.
  const std::vector<std::string> texts = {std::string(100000, 'a'), std::string(100000, ' '),
                                          std::string(20000, '7'), std::string(30000, '\xFF'),
                                          std::string(30000, '\x80')};
  for (const std::string& s : texts) {
    const std::vector<Index> ids = gpt2tok().encode_ordinary(s);
    EXPECT_EQ(gpt2tok().decode(ids), s);
    EXPECT_LT(ids.size(), s.size() + 1);
  }
  std::string mixed;
  for (int i = 0; i < 5000; ++i) mixed += "caf\xC3\xA9 \xE9t\xE9 \xF0\x9F\x91\x8D\xF0\x9F ";
  EXPECT_EQ(gpt2tok().decode(gpt2tok().encode_ordinary(mixed)), mixed);
}

TEST(Gpt2TokenizerRoundTrip, IllFormedRunIsOnePieceOfBytes) {
  // "\xE2\x80" is a truncated dash or quote mark: one ill-formed piece between two letters,
  // encoded as GPT-2's token for those two bytes (it has one), not as two single bytes.
  const std::string s = "a\xE2\x80z";
  const std::vector<Index> ids = gpt2tok().encode_ordinary(s);
  ASSERT_EQ(ids.size(), 3U);
  EXPECT_EQ(gpt2tok().token_bytes(ids[1]), "\xE2\x80");
  EXPECT_EQ(ids[0], gpt2tok().encode("a")[0]);
  EXPECT_EQ(ids[2], gpt2tok().encode("z")[0]);
}

// ---- Special tokens ----------------------------------------------------------------------------

TEST(Gpt2TokenizerSpecial, AllowedDisallowedAndOrdinary) {
  const std::string eot = "<|endoftext|>";
  EXPECT_EQ(gpt2tok().encode(eot, {eot}), (std::vector<Index>{50256}));
  EXPECT_EQ(gpt2tok().encode(eot + eot, {"all"}), (std::vector<Index>{50256, 50256}));
  ATTN_EXPECT_ERROR(gpt2tok().encode(eot), std::invalid_argument,
                    {"<|endoftext|>", "byte offset 0", "encode_ordinary"});
  ATTN_EXPECT_ERROR(gpt2tok().encode("ab <|endoftext|>"), std::invalid_argument,
                    {"<|endoftext|>", "byte offset 3"});
  ATTN_EXPECT_ERROR(gpt2tok().encode("x", {"<|im_start|>"}), std::invalid_argument,
                    {"<|im_start|>", "not a special token"});
  // As plain text, the ids js-tiktoken gives with the check off (the fixture's ordinary case).
  const std::vector<Index> as_text = gpt2tok().encode_ordinary(eot);
  EXPECT_EQ(as_text, (std::vector<Index>{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(gpt2tok().decode(as_text), eot);
  // Text next to an allowed special token is encoded on its own, as tiktoken does.
  EXPECT_EQ(gpt2tok().encode("Hello<|endoftext|>Hello", {eot}),
            (std::vector<Index>{15496, 50256, 15496}));
}

// ---- decode ------------------------------------------------------------------------------------

TEST(Gpt2TokenizerDecode, BadIdsNameTheIdAndPosition) {
  ATTN_EXPECT_ERROR(gpt2tok().decode(std::vector<Index>{15496, -1}), std::out_of_range,
                    {"token id -1", "position 1", "[0, 50257)"});
  ATTN_EXPECT_ERROR(gpt2tok().decode(std::vector<Index>{50257}), attn::IndexError,
                    {"token id 50257", "position 0"});
  const Index strided[] = {15496, 99999, 11, -5, 314, 0};
  // Every other element: 15496, 11, 314.
  const attn::TensorView<const Index, 1> view(strided, {3}, {2});
  EXPECT_EQ(gpt2tok().decode(view), "Hello, I");
  const attn::TensorView<const Index, 1> all(strided, {6});
  ATTN_EXPECT_ERROR(gpt2tok().decode(all), std::out_of_range, {"token id 99999", "position 1"});
  ATTN_EXPECT_ERROR(gpt2tok().token_bytes(50257), attn::IndexError,
                    {"token_bytes", "token id 50257", "[0, 50257)"});
}

// ---- Threads: encode is const and shares nothing mutable -------------------------------------

TEST(Gpt2TokenizerThreads, ConcurrentEncodesAgree) {
  const auto& cases = gpt2tok_cases();
  const Gpt2Tokenizer copy = gpt2tok();  // copies share the tables
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Gpt2Tokenizer& tokenizer = t % 2 == 0 ? gpt2tok() : copy;
      for (std::size_t i = static_cast<std::size_t>(t); i < cases.size(); i += 2) {
        const Gpt2TokCase& c = cases[i];
        if (c.mode == "disallowed") continue;
        const std::vector<Index> ids = c.mode == "allowed"    ? tokenizer.encode(c.text, {"all"})
                                       : c.mode == "ordinary" ? tokenizer.encode_ordinary(c.text)
                                                              : tokenizer.encode(c.text);
        if (ids != c.ids) ++mismatches[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// ---- Data files --------------------------------------------------------------------------------

/// A folder of its own under the test temp dir, with an encoder.json and a vocab.bpe written
/// from strings; removed by the destructor.
class Gpt2TokScratch {
 public:
  Gpt2TokScratch(const std::string& name, const std::string& encoder, const std::string& vocab)
      : folder_(std::filesystem::path(::testing::TempDir()) / ("attn_gpt2tok_" + name)) {
    std::filesystem::create_directories(folder_);
    std::ofstream(folder_ / "encoder.json", std::ios::binary) << encoder;
    std::ofstream(folder_ / "vocab.bpe", std::ios::binary) << vocab;
  }
  ~Gpt2TokScratch() {
    std::error_code ignored;
    std::filesystem::remove_all(folder_, ignored);
  }
  Gpt2TokScratch(const Gpt2TokScratch&) = delete;
  Gpt2TokScratch& operator=(const Gpt2TokScratch&) = delete;

  std::string dir() const { return folder_.string(); }
  std::string encoder() const { return (folder_ / "encoder.json").string(); }
  std::string vocab() const { return (folder_ / "vocab.bpe").string(); }

 private:
  std::filesystem::path folder_;
};

// A toy vocabulary in GPT-2's format: its 256 byte tokens (spelled as GPT-2's encoder.json
// spells them, ids 0-255), the merges "Ġ t" (256) and "h e" (257), then <|endoftext|> (258).
nlohmann::json gpt2tok_toy_encoder() {
  static const nlohmann::json toy = [] {
    std::ifstream in(std::string(ATTN_GPT2_DATA_DIR) + "/encoder.json");
    const nlohmann::json full = nlohmann::json::parse(in);
    nlohmann::json bytes = nlohmann::json::object();
    for (auto entry = full.begin(); entry != full.end(); ++entry) {
      if (entry.value().get<Index>() < 256) bytes[entry.key()] = entry.value();
    }
    bytes["\xC4\xA0t"] = 256;  // "Ġt" is " t"
    bytes["he"] = 257;
    bytes["<|endoftext|>"] = 258;
    return bytes;
  }();
  return toy;
}

TEST(Gpt2TokenizerData, ToyVocabularyLoadsAndMerges) {
  // "Ġ t" in the file is spelled with the character for the space byte.
  const std::string vocab = "#version: 0.2\n\xC4\xA0 t\nh e\n";
  const Gpt2TokScratch files("toy", gpt2tok_toy_encoder().dump(), vocab);
  const Gpt2Tokenizer toy = Gpt2Tokenizer::from_directory(files.dir());
  EXPECT_EQ(toy.vocab_size(), 259);
  // " the": " t" (rank 256) merges before "he" (257), then "he": [" t", "he"].
  EXPECT_EQ(toy.encode_ordinary(" the"), (std::vector<Index>{256, 257}));
  EXPECT_EQ(toy.encode("<|endoftext|>", {"all"}), (std::vector<Index>{258}));
  EXPECT_EQ(toy.decode(toy.encode_ordinary(" the then")), " the then");
  // from_files, and a folder given with a trailing slash, load the same.
  EXPECT_EQ(Gpt2Tokenizer::from_files(files.encoder(), files.vocab()).vocab_size(), 259);
  EXPECT_EQ(Gpt2Tokenizer::from_directory(files.dir() + "/").vocab_size(), 259);
  // Windows line ends are accepted.
  const Gpt2TokScratch crlf("crlf", gpt2tok_toy_encoder().dump(),
                            "#version: 0.2\r\n\xC4\xA0 t\r\nh e\r\n");
  EXPECT_EQ(Gpt2Tokenizer::from_directory(crlf.dir()).encode_ordinary(" the"),
            (std::vector<Index>{256, 257}));
}

TEST(Gpt2TokenizerData, MissingFilesAreNamed) {
  ATTN_EXPECT_ERROR(Gpt2Tokenizer::from_directory("/no/such/attn/dir"), TokenizerDataError,
                    {"cannot open encoder.json file", "/no/such/attn/dir/encoder.json"});
  const Gpt2TokScratch files("missing_vocab", gpt2tok_toy_encoder().dump(), "");
  std::filesystem::remove(files.vocab());
  ATTN_EXPECT_ERROR(Gpt2Tokenizer::from_directory(files.dir()), TokenizerDataError,
                    {"cannot open vocab.bpe file", files.vocab().c_str()});
  ATTN_EXPECT_ERROR(Gpt2Tokenizer::from_directory("/no/such/attn/dir"), std::invalid_argument,
                    {"encoder.json"});
}

TEST(Gpt2TokenizerData, MalformedEncoderJsonIsNamed) {
  const std::string good_vocab = "#version: 0.2\n\xC4\xA0 t\nh e\n";
  struct BadEncoder {
    const char* name;
    std::string encoder;
    std::vector<const char*> fragments;
  };
  nlohmann::json not_integer = gpt2tok_toy_encoder();
  not_integer["he"] = "257";
  nlohmann::json out_of_range = gpt2tok_toy_encoder();
  out_of_range["he"] = 5000;
  nlohmann::json negative = gpt2tok_toy_encoder();
  negative["he"] = -3;
  nlohmann::json twice = gpt2tok_toy_encoder();
  twice["he"] = 256;
  nlohmann::json foreign = gpt2tok_toy_encoder();
  foreign.erase("he");
  foreign["\xE4\xB8\xAD"] = 257;  // U+4E2D is not in GPT-2's byte alphabet
  nlohmann::json no_special = gpt2tok_toy_encoder();
  no_special.erase("<|endoftext|>");
  no_special["zz"] = 258;
  nlohmann::json no_byte = gpt2tok_toy_encoder();
  no_byte.erase("!");  // byte 0x21, id 0
  no_byte["!!"] = 0;
  nlohmann::json extra = gpt2tok_toy_encoder();
  extra["<|endoftext|>"] = 259;
  extra["xyz"] = 258;
  const std::vector<BadEncoder> cases = {
      {"truncated", "{\"!\": 0, ", {"not valid JSON"}},
      {"array", "[1, 2, 3]", {"must be a JSON object", "array"}},
      {"not_integer", not_integer.dump(), {"the id of \"he\" must be an integer", "string"}},
      {"out_of_range", out_of_range.dump(), {"the id of \"he\" is 5000", "outside [0, 259)"}},
      {"negative", negative.dump(), {"the id of \"he\" is -3"}},
      {"twice", twice.dump(), {"id 256 is given twice"}},
      {"foreign", foreign.dump(), {"U+4E2D", "not a character of GPT-2's byte alphabet"}},
      {"no_special", no_special.dump(), {"no entry for \"<|endoftext|>\""}},
      {"no_byte", no_byte.dump(), {"the byte 33 has no token"}},
      {"extra", extra.dump(), {"has 260 entries", "make 259"}},
  };
  for (const BadEncoder& bad : cases) {
    SCOPED_TRACE(bad.name);
    const Gpt2TokScratch files(std::string("encoder_") + bad.name, bad.encoder, good_vocab);
    bool thrown = false;
    try {
      (void)Gpt2Tokenizer::from_directory(files.dir());
    } catch (const TokenizerDataError& error) {
      thrown = true;
      const std::string message = error.what();
      EXPECT_NE(message.find(files.encoder()), std::string::npos) << message;
      for (const char* fragment : bad.fragments) {
        EXPECT_NE(message.find(fragment), std::string::npos) << message << " lacks " << fragment;
      }
    }
    EXPECT_TRUE(thrown);
  }
}

TEST(Gpt2TokenizerData, MalformedVocabBpeNamesTheLine) {
  struct BadVocab {
    const char* name;
    std::string vocab;
    std::vector<const char*> fragments;
  };
  const std::vector<BadVocab> cases = {
      {"one_token", "#version: 0.2\n\xC4\xA0t\nh e\n", {"line 2", "two tokens separated"}},
      {"three_tokens", "#version: 0.2\n\xC4\xA0 t\nh e x\n", {"line 3", "two tokens separated"}},
      {"two_spaces", "#version: 0.2\n\xC4\xA0  t\nh e\n", {"line 2", "two tokens separated"}},
      {"swapped",
       "#version: 0.2\nh e\n\xC4\xA0 t\n",
       {"line 2", "merge 0", "must make the token with id 256", "gives it id 257"}},
      {"not_made",
       "#version: 0.2\n\xC4\xA0 t\nh e\nx y\n",
       {"line 4", "merge 2", "lacks the merged token"}},
      {"foreign", "#version: 0.2\n\xE4\xB8\xAD t\nh e\n", {"line 2", "U+4E2D"}},
      {"overlong", "#version: 0.2\n\xC4\xA0 t\nh \xC1\xA5\n", {"line 3", "ill-formed UTF-8"}},
      {"unknown_part", "#version: 0.2\n\xC4\xA0 t\nhe\xC4\xA0 e\n", {"line 3", "is not in"}},
      {"blank_inside", "#version: 0.2\n\xC4\xA0 t\n\nh e\n", {"line 3", "empty line"}},
      {"too_few", "#version: 0.2\n\xC4\xA0 t\n", {"has 259 entries", "make 258"}},
  };
  for (const BadVocab& bad : cases) {
    SCOPED_TRACE(bad.name);
    const Gpt2TokScratch files(std::string("vocab_") + bad.name, gpt2tok_toy_encoder().dump(),
                               bad.vocab);
    bool thrown = false;
    try {
      (void)Gpt2Tokenizer::from_directory(files.dir());
    } catch (const TokenizerDataError& error) {
      thrown = true;
      const std::string message = error.what();
      for (const char* fragment : bad.fragments) {
        EXPECT_NE(message.find(fragment), std::string::npos) << message << " lacks " << fragment;
      }
      // Line errors name vocab.bpe; the count error names encoder.json (and vocab.bpe).
      EXPECT_NE(message.find(files.vocab()), std::string::npos) << message;
    }
    EXPECT_TRUE(thrown);
  }
}

}  // namespace
