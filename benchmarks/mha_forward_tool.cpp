// attn_mha_forward_tool: one forward pass of the seeded GPT-2-sized MultiHeadAttention on an input
// read from a file, so benchmarks/compare.py can check a peer (ONNX Runtime) against attn on the
// same weights before it times either. Not a benchmark: no timing here.
//
//   attn_mha_forward_tool B T input.f32 output.f32
//
// The layer is MultiHeadAttention<float>(768, 768, T, 0, 12, qkv_bias false, Generator(123)) in
// eval mode, whose weights equal torch.manual_seed(123) followed by the book's
// MultiHeadAttention(768, 768, T, 0.0, 12) (ort_peer.make_weights gives the same numbers).
// input holds x (B, T, 768) and output receives out (B, T, 768): raw little-endian float32,
// row-major, no header. Forward runs the fused kernel, the path the benchmarks time.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include <attn/attn.hpp>

namespace {

constexpr attn::Index kEmbedding = 768;
constexpr attn::Index kHeads = 12;
constexpr std::uint64_t kSeed = 123;

attn::Index parse_size(const char* text, const char* what) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 1) {
    throw std::invalid_argument(std::string(what) + " (" + text + ") must be a positive integer");
  }
  return static_cast<attn::Index>(value);
}

void read_floats(const std::string& file, float* data, attn::Index count) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + file);
  const auto bytes = static_cast<std::streamoff>(in.tellg());
  const auto expected = static_cast<std::streamoff>(count * attn::Index(sizeof(float)));
  if (bytes != expected) {
    throw std::runtime_error(file + " holds " + std::to_string(bytes) + " bytes, expected " +
                             std::to_string(expected));
  }
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data), expected);  // NOLINT: raw float32 bytes
  if (!in) throw std::runtime_error("cannot read " + file);
}

void write_floats(const std::string& file, const float* data, attn::Index count) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data),  // NOLINT: raw float32 bytes
            static_cast<std::streamsize>(count * attn::Index(sizeof(float))));
  if (!out) throw std::runtime_error("cannot write " + file);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: " << argv[0] << " B T input.f32 output.f32\n";
    return 2;
  }
  try {
    const attn::Index batch = parse_size(argv[1], "B"), tokens = parse_size(argv[2], "T");
    attn::MultiHeadAttention<float> mha(kEmbedding, kEmbedding, tokens, 0.0f, kHeads, false,
                                        attn::Generator(kSeed));
    mha.eval();
    mha.set_attention_path(attn::AttentionPath::fused);
    attn::Tensor<float, 3> x({batch, tokens, kEmbedding});
    read_floats(argv[3], x.data(), x.numel());
    const auto out = mha.forward(x.view());
    write_floats(argv[4], out.data(), out.numel());
  } catch (const std::exception& error) {
    std::cerr << argv[0] << ": " << error.what() << "\n";
    return 1;
  }
  return 0;
}
