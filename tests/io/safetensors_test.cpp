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

TEST(SafetensorsReader, ReadsTheHeaderThenOneTensorAtATime) {
  // The reader's index and each tensor it reads equal what the whole-file parse holds.
  const std::string path = attn_test::fixture_path("gpt2_tiny_bf16/model.safetensors");
  const auto whole = attn::io::read_safetensors(path);
  attn::io::SafetensorsReader reader(path);
  EXPECT_EQ(reader.path(), path);
  ASSERT_EQ(reader.tensors().size(), whole.tensors.size());
  EXPECT_EQ(reader.metadata(), whole.metadata);
  for (const auto& [name, tensor] : whole.tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(reader.contains(name));
    const attn::io::SafetensorsEntry& entry = reader.entry(name);
    EXPECT_EQ(entry.dtype, tensor.dtype);
    EXPECT_EQ(entry.shape, tensor.shape);
    EXPECT_EQ(entry.byte_size(), tensor.bytes.size());
    EXPECT_EQ(reader.read(name).bytes, tensor.bytes);
  }
  // A part of a tensor, converted: BF16 widens to float exactly, as the whole tensor does.
  const std::string name = "transformer.h.1.mlp.c_fc.weight";  // (24, 96) BF16
  const auto all = attn::io::to_state_dict<float>(whole).at(name).values;
  std::vector<float> part(100);
  reader.read_values(name, 1000, part.size(), part.data());
  EXPECT_EQ(part, std::vector<float>(all.begin() + 1000, all.begin() + 1100));
  // Reading in another order (seeking back) changes nothing.
  EXPECT_EQ(reader.read("transformer.wte.weight").bytes,
            whole.tensors.at("transformer.wte.weight").bytes);
}

TEST(SafetensorsReader, RefusesWhatItCannotRead) {
  const std::string path = attn_test::fixture_path("gpt2_tiny_bf16/model.safetensors");
  attn::io::SafetensorsReader reader(path);
  ATTN_EXPECT_ERROR(reader.entry("wte.weight"), SafetensorsError,
                    {path.c_str(), "has no tensor 'wte.weight'", "'lm_head.weight'"});
  std::vector<float> values(10);
  ATTN_EXPECT_ERROR(reader.read_values("transformer.ln_f.bias", 20, 10, values.data()),
                    SafetensorsError,
                    {"elements [20, 30) of tensor 'transformer.ln_f.bias'", "it has 24"});
  ATTN_EXPECT_ERROR(attn::io::SafetensorsReader("/nonexistent/attn.safetensors"), SafetensorsError,
                    {"/nonexistent/attn.safetensors", "cannot open"});
  // A file cut short after its header was written: the header is valid, the data is not there.
  const std::string cut = ::testing::TempDir() + "attn_reader_cut.safetensors";
  {
    const auto bytes = attn::io::serialize_safetensors(attn::io::read_safetensors(path));
    std::vector<unsigned char> header_only(bytes.begin(), bytes.end() - 8);
    std::FILE* out = std::fopen(cut.c_str(), "wb");
    ASSERT_NE(out, nullptr);
    std::fwrite(header_only.data(), 1, header_only.size(), out);
    std::fclose(out);
  }
  ATTN_EXPECT_ERROR(attn::io::SafetensorsReader{cut}, SafetensorsError,
                    {cut.c_str(), "outside the", "data section"});
  std::remove(cut.c_str());
  // load_tensor reads the one tensor it names.
  const auto bias = attn::io::load_tensor<float, 1>(path, "transformer.ln_f.bias");
  EXPECT_EQ(bias.numel(), 24);
}

}  // namespace
