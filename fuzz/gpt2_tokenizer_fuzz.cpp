// Fuzzing GPT-2's tokenizer with arbitrary bytes: whatever they are (ill-formed UTF-8, NUL,
// special tokens, megabyte-long runs), encode_ordinary gives ids in [0, 50256) that decode to the
// same bytes, and encode with "<|endoftext|>" allowed gives ids that decode to them too, never
// more ids than encode_ordinary. Any other outcome (an exception, a crash, a sanitizer report)
// is a bug. The tables are loaded once from ATTN_GPT2_DATA_DIR (data/gpt2).
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "attn/text/gpt2_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const attn::text::Gpt2Tokenizer tokenizer =
      attn::text::Gpt2Tokenizer::from_directory(ATTN_GPT2_DATA_DIR);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const std::vector<attn::Index> ordinary = tokenizer.encode_ordinary(text);
  for (const attn::Index id : ordinary) {
    if (id < 0 || id >= attn::text::Gpt2Tokenizer::end_of_text) std::abort();
  }
  if (tokenizer.decode(ordinary) != text) std::abort();

  const std::vector<attn::Index> special = tokenizer.encode(text, {"<|endoftext|>"});
  if (tokenizer.decode(special) != text) std::abort();
  if (special.size() > ordinary.size()) std::abort();
  return 0;
}
