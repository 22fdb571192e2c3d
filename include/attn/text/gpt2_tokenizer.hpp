// attn/text/gpt2_tokenizer.hpp: Gpt2Tokenizer, GPT-2's byte-level BPE tokenizer (Radford et al.
// 2019), the same token ids as tiktoken's "gpt2" encoding. Component attn::text (PCRE2 and
// nlohmann-json); docs/tokenizer.md has the details.
//
// Encoding: the text is cut into pieces by GPT-2's regular expression (detail/pretokenizer.hpp),
// and each piece, as bytes, is merged pair by pair by rank (detail/byte_pair_encoding.hpp). The
// tables come from the files GPT-2 published: encoder.json (token -> id, tokens spelled in
// GPT-2's byte-to-character alphabet) and vocab.bpe (the merges in rank order); attn ships them
// in data/gpt2 and installs them to <prefix>/share/attn/gpt2.
//
// Any bytes encode, and decode(encode(s)) == s for every byte string: a maximal run of
// ill-formed UTF-8 is one piece of its own, encoded as bytes like any other piece.
#ifndef ATTN_TEXT_GPT2_TOKENIZER_HPP
#define ATTN_TEXT_GPT2_TOKENIZER_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/text/detail/byte_pair_encoding.hpp"
#include "attn/text/detail/pretokenizer.hpp"

namespace attn::text {

/// A tokenizer data file was missing or malformed. The message names the file and, for
/// vocab.bpe, the line.
class TokenizerDataError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

/// GPT-2's byte-to-character alphabet (its bytes_to_unicode): the printable bytes '!'..'~',
/// U+00A1..U+00AC and U+00AE..U+00FF stand for themselves; the other 68 bytes, in order, for
/// U+0100..U+0143. encoder.json and vocab.bpe spell every token in these characters.
class ByteAlphabet {
 public:
  ByteAlphabet() {
    byte_of_.fill(-1);
    char32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t c = printable ? static_cast<char32_t>(b) : extra++;
      byte_of_[c] = b;
    }
  }

  /// The bytes a token spelled in the alphabet stands for; false if `spelled` has a character
  /// outside it (its code point, or -1 for ill-formed UTF-8, goes to `bad`).
  bool to_bytes(std::string_view spelled, std::string& bytes, long& bad) const {
    bytes.clear();
    std::size_t i = 0;
    while (i < spelled.size()) {
      const auto lead = static_cast<unsigned char>(spelled[i]);
      char32_t c = 0;
      if (lead < 0x80) {
        c = lead;
        i += 1;
      } else if ((lead & 0xE0) == 0xC0 && i + 1 < spelled.size() &&
                 (static_cast<unsigned char>(spelled[i + 1]) & 0xC0) == 0x80) {
        c = (static_cast<char32_t>(lead & 0x1F) << 6) |
            (static_cast<unsigned char>(spelled[i + 1]) & 0x3F);
        i += 2;
        if (c < 0x80) {  // an overlong form
          bad = -1;
          return false;
        }
      } else {
        // Every character of the alphabet is below U+0800: a longer sequence is outside it.
        bad = lead >= 0xE0 ? static_cast<long>(decode_long(spelled.substr(i))) : -1;
        return false;
      }
      if (c >= byte_of_.size() || byte_of_[c] < 0) {
        bad = static_cast<long>(c);
        return false;
      }
      bytes.push_back(static_cast<char>(byte_of_[c]));
    }
    return true;
  }

 private:
  // A 3- or 4-byte UTF-8 character's code point, for the error message only (-1 if ill-formed).
  static long decode_long(std::string_view s) {
    const auto lead = static_cast<unsigned char>(s[0]);
    const std::size_t length = (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 0;
    if (length == 0 || s.size() < length) return -1;
    long c = lead & (length == 3 ? 0x0F : 0x07);
    for (std::size_t k = 1; k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[k]);
      if ((b & 0xC0) != 0x80) return -1;
      c = (c << 6) | (b & 0x3F);
    }
    return c;
  }

  std::array<int, 324> byte_of_{};  // U+0000..U+0143 -> byte, or -1
};

inline std::string read_whole_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw TokenizerDataError(
        attn::detail::concat("Gpt2Tokenizer: cannot open ", what, " file '", path, "'"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    throw TokenizerDataError(
        attn::detail::concat("Gpt2Tokenizer: cannot read ", what, " file '", path, "'"));
  }
  return contents.str();
}

inline std::string code_point_name(long c) {
  if (c < 0) return "an ill-formed UTF-8 sequence";
  std::ostringstream out;
  out << "U+" << std::hex << std::uppercase;
  out.width(4);
  out.fill('0');
  out << c;
  return out.str();
}

/// Everything a tokenizer knows, built once and shared (immutable) by its copies.
struct Gpt2Tables {
  TokenTable tokens;  // id -> bytes; mergeable tokens hashed by bytes
  std::vector<std::pair<std::string, Index>> specials;
  Pretokenizer pretokenizer{gpt2_pattern};
};

}  // namespace detail

/// GPT-2's tokenizer: text (any bytes) to token ids and back, equal to tiktoken's "gpt2".
///
/// Immutable once loaded: encode and decode are const and may be called from any number of
/// threads at once. Copies share the tables.
class Gpt2Tokenizer {
 public:
  /// The id of "<|endoftext|>" in GPT-2's tables.
  static constexpr Index end_of_text = 50256;

  /// Loads `dir`/encoder.json and `dir`/vocab.bpe (attn's data/gpt2, installed to
  /// <prefix>/share/attn/gpt2).
  /// @throws TokenizerDataError naming the file (and line) if one is missing or malformed.
  static Gpt2Tokenizer from_directory(const std::string& dir) {
    const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
    return from_files(base + "encoder.json", base + "vocab.bpe");
  }

  /// Loads GPT-2's tables from these two files. encoder.json maps every token to its id: the 256
  /// single bytes (ids below 256), the merges (merge i of vocab.bpe makes token 256 + i) and
  /// "<|endoftext|>" (the last id), and nothing else; vocab.bpe is an optional "#version" line,
  /// then one merge per line, two tokens separated by one space.
  /// @throws TokenizerDataError naming the file, the line (vocab.bpe) and the offending entry.
  static Gpt2Tokenizer from_files(const std::string& encoder_json, const std::string& vocab_bpe) {
    return Gpt2Tokenizer(load(encoder_json, vocab_bpe));
  }

  /// The ids of `text`, as tiktoken's encode(text, allowed_special=..., disallowed_special="all").
  /// A special token named in `allowed_special` ("<|endoftext|>", or "all" for every special)
  /// is encoded as its id where it occurs; any other occurrence of a special token is an error.
  /// @throws std::invalid_argument if the text holds a special token that is not allowed (the
  ///         message names it and its byte offset), or `allowed_special` names something that
  ///         is not a special token.
  std::vector<Index> encode(std::string_view text,
                            const std::vector<std::string>& allowed_special = {}) const {
    const std::vector<bool> allowed = resolve_allowed(allowed_special);
    // As tiktoken does, refuse before encoding anything.
    for (std::size_t at = 0;;) {
      const auto [offset, which] = next_special(text, at);
      if (offset == std::string_view::npos) break;
      if (!allowed[which]) {
        throw std::invalid_argument(attn::detail::concat(
            "Gpt2Tokenizer::encode: the text holds the special token ",
            tables_->specials[which].first, " at byte offset ", offset,
            ", which allowed_special does not allow; allow it to encode it as token ",
            tables_->specials[which].second, ", or call encode_ordinary to encode it as text"));
      }
      at = offset + tables_->specials[which].first.size();
    }
    std::vector<Index> ids;
    ids.reserve(text.size() / 4 + 1);
    detail::BpeScratch scratch;
    std::size_t at = 0;
    while (true) {
      const auto [offset, which] = next_special(text, at);
      const std::size_t end = offset == std::string_view::npos ? text.size() : offset;
      encode_ordinary_into(text.substr(at, end - at), scratch, ids);
      if (offset == std::string_view::npos) break;
      ids.push_back(tables_->specials[which].second);
      at = offset + tables_->specials[which].first.size();
    }
    return ids;
  }

  /// The ids of `text` with special tokens read as plain text, as tiktoken's encode_ordinary.
  std::vector<Index> encode_ordinary(std::string_view text) const {
    std::vector<Index> ids;
    ids.reserve(text.size() / 4 + 1);
    detail::BpeScratch scratch;
    encode_ordinary_into(text, scratch, ids);
    return ids;
  }

  /// The bytes of these ids, concatenated ("<|endoftext|>" for end_of_text). The result is not
  /// always well-formed UTF-8: a character's bytes may be split between ids.
  /// @throws IndexError (a std::out_of_range) naming the id and its position if an id is not in
  ///         [0, vocab_size()).
  std::string decode(const std::vector<Index>& ids) const {
    std::string text;
    text.reserve(ids.size() * 4);
    for (std::size_t i = 0; i < ids.size(); ++i) append_token(text, ids[i], i);
    return text;
  }

  /// decode of a rank-1 view of ids (any stride).
  std::string decode(TensorView<const Index, 1> ids) const {
    std::string text;
    text.reserve(static_cast<std::size_t>(ids.numel()) * 4);
    for (Index i = 0; i < ids.numel(); ++i) append_token(text, ids(i), static_cast<std::size_t>(i));
    return text;
  }

  /// The number of ids, special tokens included (50257 for GPT-2).
  Index vocab_size() const { return static_cast<Index>(tables_->tokens.size()); }

  /// The bytes of one token.
  /// @throws IndexError if `id` is not in [0, vocab_size()).
  std::string_view token_bytes(Index id) const {
    if (id < 0 || id >= vocab_size()) {
      throw IndexError(attn::detail::concat("Gpt2Tokenizer::token_bytes: token id ", id,
                                            " is out of range [0, ", vocab_size(), ")"));
    }
    return tables_->tokens.bytes(static_cast<std::size_t>(id));
  }

  /// True when PCRE2 JIT-compiled the pre-tokenizer (it then runs several times faster).
  bool jit() const { return tables_->pretokenizer.jit(); }

 private:
  explicit Gpt2Tokenizer(std::shared_ptr<const detail::Gpt2Tables> tables)
      : tables_(std::move(tables)) {}

  void encode_ordinary_into(std::string_view text, detail::BpeScratch& scratch,
                            std::vector<Index>& ids) const {
    const detail::TokenTable& tokens = tables_->tokens;
    tables_->pretokenizer.split(
        text, [&](std::string_view piece) { detail::encode_piece(tokens, piece, scratch, ids); });
  }

  // The first special token at or after `from`: its offset (npos if none) and index.
  std::pair<std::size_t, std::size_t> next_special(std::string_view text, std::size_t from) const {
    std::size_t best = std::string_view::npos;
    std::size_t which = 0;
    for (std::size_t s = 0; s < tables_->specials.size(); ++s) {
      const std::size_t at = text.find(tables_->specials[s].first, from);
      if (at < best) {
        best = at;
        which = s;
      }
    }
    return {best, which};
  }

  std::vector<bool> resolve_allowed(const std::vector<std::string>& names) const {
    std::vector<bool> allowed(tables_->specials.size(), false);
    for (const std::string& name : names) {
      if (name == "all") {
        allowed.assign(allowed.size(), true);
        continue;
      }
      bool known = false;
      for (std::size_t s = 0; s < tables_->specials.size(); ++s) {
        if (tables_->specials[s].first == name) {
          allowed[s] = true;
          known = true;
        }
      }
      if (!known) {
        throw std::invalid_argument(
            attn::detail::concat("Gpt2Tokenizer::encode: allowed_special names \"", name,
                                 "\", which is not a special token (GPT-2 has <|endoftext|>; "
                                 "\"all\" allows every one)"));
      }
    }
    return allowed;
  }

  void check_id(Index id, std::size_t position) const {
    if (id < 0 || id >= vocab_size()) {
      throw IndexError(attn::detail::concat("Gpt2Tokenizer::decode: token id ", id, " at position ",
                                            position, " is out of range [0, ", vocab_size(), ")"));
    }
  }

  void append_token(std::string& text, Index id, std::size_t position) const {
    check_id(id, position);
    const std::string_view bytes = tables_->tokens.bytes(static_cast<std::size_t>(id));
    text.append(bytes.data(), bytes.size());
  }

  static std::shared_ptr<const detail::Gpt2Tables> load(const std::string& encoder_path,
                                                        const std::string& vocab_path);

  std::shared_ptr<const detail::Gpt2Tables> tables_;
};

namespace detail {

[[noreturn]] inline void data_error(const std::string& path, const std::string& what) {
  throw TokenizerDataError(attn::detail::concat("Gpt2Tokenizer: ", path, ": ", what));
}

[[noreturn]] inline void data_error(const std::string& path, std::size_t line,
                                    const std::string& what) {
  throw TokenizerDataError(
      attn::detail::concat("Gpt2Tokenizer: ", path, " line ", line, ": ", what));
}

/// `text` as a JSON string literal (control characters escaped, ill-formed UTF-8 replaced), for
/// error messages.
inline std::string json_quoted(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace detail

inline std::shared_ptr<const detail::Gpt2Tables> Gpt2Tokenizer::load(
    const std::string& encoder_path, const std::string& vocab_path) {
  using detail::data_error;
  using detail::json_quoted;
  const std::string encoder_text = detail::read_whole_file(encoder_path, "encoder.json");
  const std::string vocab_text = detail::read_whole_file(vocab_path, "vocab.bpe");
  const detail::ByteAlphabet alphabet;
  const std::string special_name = "<|endoftext|>";

  // ---- encoder.json: every token's id, the ids exactly 0 .. n - 1 ------------------------------
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(encoder_text);
  } catch (const nlohmann::json::parse_error& error) {
    data_error(encoder_path, attn::detail::concat("not valid JSON (", error.what(), ")"));
  }
  if (!json.is_object()) {
    data_error(encoder_path, attn::detail::concat("must be a JSON object mapping tokens to ids, "
                                                  "not ",
                                                  json.type_name()));
  }
  const std::size_t n = json.size();
  std::vector<std::string> bytes_of(n);
  std::vector<bool> seen(n, false);
  std::size_t special_id = n;
  std::string bytes;
  for (auto entry = json.begin(); entry != json.end(); ++entry) {
    const std::string& key = entry.key();
    const nlohmann::json& value = entry.value();
    if (!value.is_number_integer()) {
      data_error(encoder_path,
                 attn::detail::concat("the id of ", json_quoted(key), " must be an integer, not ",
                                      value.type_name(), " ", value.dump()));
    }
    if (value.is_number_unsigned() ? value.get<std::uint64_t>() >= n : true) {
      data_error(encoder_path,
                 attn::detail::concat("the id of ", json_quoted(key), " is ", value.dump(),
                                      ", outside [0, ", n, ") for ", n, " entries"));
    }
    const auto id = static_cast<std::size_t>(value.get<std::uint64_t>());
    if (seen[id]) {
      data_error(encoder_path, attn::detail::concat("id ", id, " is given twice (again to ",
                                                    json_quoted(key), ")"));
    }
    seen[id] = true;
    if (key == special_name) {
      special_id = id;
      bytes_of[id] = key;
      continue;
    }
    long bad = 0;
    if (!alphabet.to_bytes(key, bytes, bad)) {
      data_error(encoder_path,
                 attn::detail::concat("the token ", json_quoted(key), " (id ", id, ") has ",
                                      detail::code_point_name(bad),
                                      ", which is not a character of GPT-2's byte alphabet"));
    }
    bytes_of[id] = bytes;
  }
  if (special_id == n) data_error(encoder_path, "has no entry for " + json_quoted(special_name));

  auto tables = std::make_shared<detail::Gpt2Tables>();
  for (std::size_t id = 0; id < n; ++id) tables->tokens.add(bytes_of[id], id != special_id);
  tables->tokens.finish();
  tables->specials.emplace_back(special_name, static_cast<Index>(special_id));
  for (int b = 0; b < 256; ++b) {
    const std::uint32_t id = tables->tokens.byte_rank(static_cast<unsigned char>(b));
    if (id == detail::no_rank || id >= 256) {
      data_error(encoder_path, attn::detail::concat(
                                   "the byte ", b,
                                   id == detail::no_rank ? " has no token"
                                                         : attn::detail::concat(" has id ", id, ""),
                                   "; the 256 single bytes must be the tokens with ids 0 to 255"));
    }
  }

  // ---- vocab.bpe: merge m (0-based) of two tokens must make the token with id 256 + m ----------
  std::size_t merges = 0;
  std::size_t line_number = 0;
  std::size_t blank_line = 0;
  std::string left;
  std::string right;
  for (std::size_t at = 0; at < vocab_text.size();) {
    std::size_t end = vocab_text.find('\n', at);
    if (end == std::string::npos) end = vocab_text.size();
    std::string_view line(vocab_text.data() + at, end - at);
    at = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.substr(0, 8) == "#version") continue;
    if (line.empty()) {
      if (blank_line == 0) blank_line = line_number;
      continue;
    }
    if (blank_line != 0) data_error(vocab_path, blank_line, "an empty line before the last merge");
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      data_error(vocab_path, line_number,
                 "expected two tokens separated by one space, got " + json_quoted(line));
    }
    const std::string_view spelled[2] = {line.substr(0, space), line.substr(space + 1)};
    std::string* parts[2] = {&left, &right};
    for (int k = 0; k < 2; ++k) {
      long bad = 0;
      if (!alphabet.to_bytes(spelled[k], *parts[k], bad)) {
        data_error(vocab_path, line_number,
                   attn::detail::concat("the token ", json_quoted(spelled[k]), " has ",
                                        detail::code_point_name(bad),
                                        ", which is not a character of GPT-2's byte alphabet"));
      }
      if (tables->tokens.find(*parts[k]) == detail::no_rank) {
        data_error(vocab_path, line_number,
                   attn::detail::concat("the token ", json_quoted(spelled[k]), " is not in ",
                                        encoder_path));
      }
    }
    const std::uint32_t made = tables->tokens.find(left + right);
    const std::size_t expected = 256 + merges;
    if (made != expected) {
      data_error(vocab_path, line_number,
                 attn::detail::concat(
                     "merge ", merges, " (", json_quoted(line), ") must make the token with id ",
                     expected, " of ", encoder_path,
                     made == detail::no_rank ? std::string(", which lacks the merged token")
                                             : attn::detail::concat(", which gives it id ", made)));
    }
    ++merges;
  }
  if (n != 256 + merges + 1) {
    data_error(encoder_path, attn::detail::concat("has ", n, " entries, but 256 bytes, the ",
                                                  merges, " merges of ", vocab_path, " and ",
                                                  special_name, " make ", 256 + merges + 1));
  }
  return tables;
}

}  // namespace attn::text

#endif  // ATTN_TEXT_GPT2_TOKENIZER_HPP
