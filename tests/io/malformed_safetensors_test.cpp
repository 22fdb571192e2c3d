// The hostile-file corpus (tests/io/malformed, written by make_corpus.py): every file is
// rejected with a SafetensorsError that names the problem, before any claimed size is trusted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "attn/io/safetensors.hpp"
#include "support/expect_error.hpp"

namespace {

const std::map<std::string, const char*>& expected_messages() {
  static const std::map<std::string, const char*> messages = {
      {"header_beyond_file", "header length 4000 runs past the end"},
      {"huge_header_claim", "exceeds the limit of 100000000 bytes"},
      {"negative_offset", "data_offsets that are not non-negative integers"},
      {"begin_after_end", "data_offsets [16, 0) outside"},
      {"offset_out_of_range", "data_offsets [0, 4096) outside the 16-byte data section"},
      {"overlapping_offsets", "tensors overlap at data offset 4"},
      {"shape_bytes_mismatch", "covers 16 bytes but its shape and dtype F32 need 12"},
      {"shape_element_overflow", "element count overflows"},
      {"shape_negative", "not a non-negative integer"},
      {"missing_dtype", "needs a string dtype"},
      {"unsupported_dtype", "dtype 'Q4_0', which attn does not know"},
      {"bool_not_0_or_1", "is BOOL but element 2 holds the byte 2"},
      {"metadata_not_string", "__metadata__ 'format' is not a string"},
      {"header_not_object", "header is not a JSON object"},
      {"truncated_json", "header is not valid JSON"},
      {"non_utf8_json", "header is not valid JSON"},
      {"duplicate_names", "names tensor 'a' more than once"},
      {"too_short", "file has 3 bytes; at least 8 needed"},
  };
  return messages;
}

TEST(MalformedSafetensors, EveryCorpusFileIsRejectedWithItsReason) {
  const std::filesystem::path folder = ATTN_MALFORMED_DIR;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() != ".safetensors") continue;
    ++files;
    const std::string name = entry.path().stem().string();
    SCOPED_TRACE(name);
    const auto expected = expected_messages().find(name);
    ASSERT_NE(expected, expected_messages().end()) << "no expected message for " << name;
    // From the file (SafetensorsReader: header first, then each tensor) and from memory.
    ATTN_EXPECT_ERROR(attn::io::read_safetensors(entry.path().string()), attn::io::SafetensorsError,
                      {expected->second, name.c_str()});
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), {});
    ATTN_EXPECT_ERROR(attn::io::parse_safetensors(bytes), attn::io::SafetensorsError,
                      {expected->second, "<memory>"});
  }
  EXPECT_EQ(files, static_cast<int>(expected_messages().size()));
}

}  // namespace
