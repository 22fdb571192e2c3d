// attn/text/detail/pretokenizer.hpp: GPT-2's pre-tokenizer, the regular expression that cuts
// text into the pieces BPE encodes one by one, run by PCRE2 (UTF + UCP, JIT-compiled when the
// library has a JIT).
//
// The pattern is GPT-2's (Radford et al. 2019, as tiktoken's "gpt2" encoding spells it)
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \s written out as Unicode's White_Space property (U+0009-000D, U+0020, U+0085, U+00A0,
// U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000), which is what tiktoken's Rust
// regex means by \s; PCRE2's own \s also matches U+180E.
//
// Any bytes are accepted (PCRE2_MATCH_INVALID_UTF): a match never contains an ill-formed UTF-8
// sequence (overlong forms, surrogates, code points above U+10FFFF, stray continuation bytes,
// truncated sequences), so the bytes between two matches are ill-formed and each such maximal
// run is one piece of its own. Every byte of the input is in exactly one piece, in order.
#ifndef ATTN_TEXT_DETAIL_PRETOKENIZER_HPP
#define ATTN_TEXT_DETAIL_PRETOKENIZER_HPP

// The 8-bit functions are called by their full names (pcre2_match_8, ...), so any code unit
// width a program chose for its own PCRE2 use works; pcre2.h needs one to be defined.
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "attn/config.hpp"

namespace attn::text::detail {

/// GPT-2's pre-tokenizer pattern, with \s spelled as the White_Space property (see above).
inline constexpr const char* gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+)"
    R"(| ?[^\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F})"
    R"(\x{205F}\x{3000}\p{L}\p{N}]+)"
    R"(|[\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F})"
    R"(\x{205F}\x{3000}]+)"
    R"((?![^\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F})"
    R"(\x{205F}\x{3000}]))"
    R"(|[\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F})"
    R"(\x{205F}\x{3000}]+)";

/// A compiled pattern, shareable between threads (each match gets its own match data).
class Pretokenizer {
 public:
  /// @throws std::runtime_error if PCRE2 cannot compile `pattern` (a PCRE2 without Unicode
  ///         support, for one).
  explicit Pretokenizer(const char* pattern) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code_8* code = pcre2_compile_8(
        reinterpret_cast<PCRE2_SPTR8>(pattern), PCRE2_ZERO_TERMINATED,
        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &error_offset, nullptr);
    if (code == nullptr) {
      throw std::runtime_error(attn::detail::concat(
          "Gpt2Tokenizer: PCRE2 cannot compile the pre-tokenizer pattern at offset ", error_offset,
          ": ", message(error)));
    }
    code_.reset(code);
    // Without a JIT (or on a platform it does not support) the interpreter matches the same.
    jit_ = pcre2_jit_compile_8(code, PCRE2_JIT_COMPLETE) == 0;
  }

  bool jit() const { return jit_; }

  /// Calls piece(std::string_view) for every piece of `text`, in order: the matches, and each
  /// maximal run of bytes between two matches (ill-formed UTF-8).
  /// @throws std::runtime_error if PCRE2 fails (it does not on this pattern: every repeat is
  ///         of a single character class, which needs no backtracking stack).
  template <typename Piece>
  void split(std::string_view text, Piece&& piece) const {
    const std::unique_ptr<pcre2_match_data_8, MatchDataDeleter> data(
        pcre2_match_data_create_from_pattern_8(code_.get(), nullptr));
    if (!data) throw std::bad_alloc();
    const auto* subject = reinterpret_cast<PCRE2_SPTR8>(text.data());
    std::size_t at = 0;
    while (at < text.size()) {
      const int found =
          jit_ ? pcre2_jit_match_8(code_.get(), subject, text.size(), at, 0, data.get(), nullptr)
               : pcre2_match_8(code_.get(), subject, text.size(), at, 0, data.get(), nullptr);
      if (found == PCRE2_ERROR_NOMATCH) break;
      if (found < 0) {
        throw std::runtime_error(
            attn::detail::concat("Gpt2Tokenizer: PCRE2 match failed: ", message(found)));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer_8(data.get());
      const std::size_t begin = ovector[0];
      const std::size_t end = ovector[1];
      if (begin > at) piece(text.substr(at, begin - at));
      ATTN_ASSERT(end > begin);  // no alternative matches the empty string
      piece(text.substr(begin, end - begin));
      at = end;
    }
    if (at < text.size()) piece(text.substr(at));
  }

 private:
  struct CodeDeleter {
    void operator()(pcre2_code_8* code) const { pcre2_code_free_8(code); }
  };
  struct MatchDataDeleter {
    void operator()(pcre2_match_data_8* data) const { pcre2_match_data_free_8(data); }
  };

  static std::string message(int error) {
    PCRE2_UCHAR8 buffer[256];
    const int length = pcre2_get_error_message_8(error, buffer, sizeof buffer);
    if (length < 0) return attn::detail::concat("error ", error);
    return {reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(length)};
  }

  std::unique_ptr<pcre2_code_8, CodeDeleter> code_;
  bool jit_ = false;
};

}  // namespace attn::text::detail

#endif  // ATTN_TEXT_DETAIL_PRETOKENIZER_HPP
