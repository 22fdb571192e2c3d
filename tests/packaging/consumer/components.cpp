// A consumer of attn's components: safetensors bytes written and read back (attn::io), a PNG
// heatmap (attn::viz), when attn::compiled is linked (it defines ATTN_COMPILED), one
// multi-head attention forward whose hot kernels come from the library, and with attn::text
// GPT-2's ids of "Hello, I am" (tiktoken's).
#include <attn/attn.hpp>
#include <attn/io/safetensors.hpp>
#include <attn/viz/heatmap_png.hpp>
#include <cstdio>
#include <vector>
#ifdef ATTN_CONSUMER_GPT2_DIR
#include <attn/text/gpt2_tokenizer.hpp>
#endif

int main() {
  attn::io::SafetensorsFile file;
  file.tensors["w"] = {attn::io::Dtype::F32, {2, 2}, std::vector<unsigned char>(4 * sizeof(float))};
  const auto parsed = attn::io::parse_safetensors(attn::io::serialize_safetensors(file));
  std::printf("attn::io: %d tensor(s) read back\n", int(parsed.tensors.size()));

  attn::Tensor<float, 2> weights({2, 2});
  for (attn::Index i = 0; i < weights.numel(); ++i) weights.data()[i] = 0.25f;
  attn::write_heatmap_png("consumer_heatmap.png", weights.view());
  std::printf("attn::viz: consumer_heatmap.png written\n");

  attn::Index d_out = 4;
#ifdef ATTN_COMPILED
  const attn::MultiHeadAttention<float> mha(4, 4, 3, 0.0f, 2, false, attn::Generator(123));
  attn::Tensor<float, 3> x({1, 3, 4});
  for (attn::Index i = 0; i < x.numel(); ++i) x.data()[i] = 0.1f * static_cast<float>(i);
  d_out = mha.forward(x.view()).size(2);
  std::printf("attn::compiled: MultiHeadAttention<float> forward, d_out %d\n", int(d_out));
#endif
  bool tokens_ok = true;
#ifdef ATTN_CONSUMER_GPT2_DIR
  const auto tokenizer = attn::text::Gpt2Tokenizer::from_directory(ATTN_CONSUMER_GPT2_DIR);
  const std::vector<attn::Index> ids = tokenizer.encode("Hello, I am");
  tokens_ok = ids == std::vector<attn::Index>{15496, 11, 314, 716};
  std::printf("attn::text: \"Hello, I am\" is %d tokens\n", int(ids.size()));
#endif
  return parsed.tensors.count("w") == 1 && d_out == 4 && tokens_ok ? 0 : 1;
}
