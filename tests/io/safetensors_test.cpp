#include "attn/io/safetensors.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "attn/layers/multi_head_attention.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"

namespace {

using attn::io::SafetensorsError;

// Builds a file from a header text and a data section, with the length prefix.
std::vector<unsigned char> raw_file(const std::string& header, std::size_t data_bytes,
                                    std::uint64_t claimed_length = ~std::uint64_t{0}) {
  const std::uint64_t length = claimed_length == ~std::uint64_t{0} ? header.size() : claimed_length;
  // Sized once and filled with memcpy (g++ 12 -O3 reports a false -Warray-bounds on insert()).
  std::vector<unsigned char> bytes(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(length >> (8 * i));
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

TEST(Safetensors, PyTorchStateDictLoadsByName) {
  // mha_book.safetensors is MultiHeadAttention(3, 2, 6, 0.0, 2).state_dict() after seed 123.
  attn::MultiHeadAttention<float> mha(3, 2, 6, 0.0f, 2, false, attn::Generator(5));
  attn::io::load_safetensors(mha, attn_test::fixture_path("mha_book.safetensors"));
  const auto file = attn::io::read_safetensors(attn_test::fixture_path("mha_book.safetensors"));
  EXPECT_EQ(file.tensors.size(), 6u);  // W_query/W_key/W_value/out_proj weights, bias, mask
  const auto& w = file.tensors.at("out_proj.weight");
  EXPECT_EQ(w.shape, (std::vector<attn::Index>{2, 2}));
  float first = 0;
  std::memcpy(&first, w.bytes.data(), sizeof first);
  EXPECT_EQ(mha.out_proj().weight()(0, 0), first);
}

TEST(Safetensors, WrongNameOrShapeIsRefusedByName) {
  auto file = attn::io::read_safetensors(attn_test::fixture_path("mha_book.safetensors"));
  attn::MultiHeadAttention<float> mha(3, 2, 6, 0.0f, 2);
  auto renamed = file;
  renamed.tensors["W_q.weight"] = renamed.tensors.at("W_query.weight");
  renamed.tensors.erase("W_query.weight");
  ATTN_EXPECT_ERROR(attn::load_state_dict(mha, attn::io::to_state_dict<float>(renamed)),
                    std::invalid_argument,
                    {"missing key 'W_query.weight'", "unexpected key 'W_q.weight'"});
  attn::MultiHeadAttention<float> wider(3, 4, 6, 0.0f, 2);
  ATTN_EXPECT_ERROR(attn::load_state_dict(wider, attn::io::to_state_dict<float>(file)),
                    std::invalid_argument,
                    {"'W_key.weight' has shape (2, 3) but the layer expects (4, 3)"});
  // Through load_safetensors the same problems name the file.
  attn::MultiHeadAttention<float> wide_file(3, 4, 6, 0.0f, 2);
  ATTN_EXPECT_ERROR(
      attn::io::load_safetensors(wide_file, attn_test::fixture_path("mha_book.safetensors")),
      SafetensorsError,
      {"mha_book.safetensors", "'W_key.weight' has shape (2, 3) but the layer expects (4, 3)"});
}

TEST(Safetensors, WriteThenReadRoundTrips) {
  attn::MultiHeadAttention<double> source(4, 6, 5, 0.0, 3, true, attn::Generator(1));
  const std::string path = ::testing::TempDir() + "attn_roundtrip.safetensors";
  attn::io::save_safetensors(source, path);
  attn::MultiHeadAttention<double> target(4, 6, 5, 0.0, 3, true, attn::Generator(2));
  attn::io::load_safetensors(target, path);
  EXPECT_EQ(attn::state_dict(source).at("W_value.bias").values,
            attn::state_dict(target).at("W_value.bias").values);
  const auto bytes = attn::io::serialize_safetensors(attn::io::read_safetensors(path));
  std::uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | bytes[i];
  EXPECT_EQ(header % 8, 0u);  // data section 8-byte aligned
  std::remove(path.c_str());
}

TEST(Safetensors, MetadataIsRead) {
  const auto io = attn_test::load_io("mha_book");
  EXPECT_EQ(io.metadata.at("num_heads"), "2");
}

TEST(Safetensors, MalformedFilesAreRejectedWithClearErrors) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NO_THROW(attn::io::parse_safetensors(raw_file(ok, 8)));
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors({1, 2, 3}), SafetensorsError, {"3 bytes"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(raw_file(ok, 8, 1000)), SafetensorsError,
                    {"header length 1000 runs past the end"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(raw_file(ok, 8, std::uint64_t{1} << 60)),
                    SafetensorsError, {"exceeds the limit"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(raw_file(ok, 4)), SafetensorsError,
                    {"tensor 'a'", "[0, 8)", "4-byte data section"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(
                        raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
                    SafetensorsError, {"covers 8 bytes", "need 12"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(
                        raw_file(R"({"a":{"dtype":"I9","shape":[8],"data_offsets":[0,8]}})", 8)),
                    SafetensorsError, {"tensor 'a'", "dtype 'I9'", "BOOL, U8, I8"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(
                        raw_file(R"({"a":{"dtype":"I16","shape":[3],"data_offsets":[0,8]}})", 8)),
                    SafetensorsError, {"covers 8 bytes but its shape and dtype I16 need 6"});
  ATTN_EXPECT_ERROR(
      attn::io::parse_safetensors(raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8)),
      SafetensorsError, {"tensor 'a' needs a string dtype"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(raw_file(R"({"a": nope})", 8)), SafetensorsError,
                    {"not valid JSON"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(
                        raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                 12)),
                    SafetensorsError, {"overlap at data offset 4"});
  ATTN_EXPECT_ERROR(attn::io::parse_safetensors(
                        raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
                    SafetensorsError, {"non-negative"});
  ATTN_EXPECT_ERROR(attn::io::read_safetensors("/nonexistent/attn.safetensors"), SafetensorsError,
                    {"/nonexistent/attn.safetensors", "cannot open"});
}

}  // namespace
