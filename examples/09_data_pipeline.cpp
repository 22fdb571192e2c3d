// The chapter-3 notebook (ch03 multihead-attention.ipynb) end to end: text -> GPT-2 token ids ->
// sliding windows (GPTDatasetV1) -> batches (DataLoader) -> token + positional embeddings ->
// multi-head attention, in both of the notebook's variants.
//
// Where the notebook leaves randomness unseeded, this program seeds it, so its numbers can be
// checked against PyTorch's (examples/expected/09_data_pipeline.txt, written by
// tests/fixtures/generate_notebook.py):
//  - the notebook's create_dataloader shuffles (shuffle=True is its default) from an unseeded
//    generator; here the loader's generator is seeded 123, which gives the order of
//    DataLoader(..., shuffle=True, generator=torch.Generator().manual_seed(123));
//  - the notebook does not seed its two nn.Embedding layers; here both are drawn from one
//    Generator(123), as torch.manual_seed(123) followed by the two nn.Embedding(...) calls.
// Variants A and B seed as the notebook does, torch.manual_seed(123) before each.
//
//   attn_09_data_pipeline [text file] [GPT-2 tables directory]
#include <algorithm>
#include <attn/attn.hpp>
#include <attn/text/gpt2_tokenizer.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

/// PyTorch's torch.Size([8, 4, 256]).
template <typename ShapeArray>
std::string torch_size(const ShapeArray& shape) {
  std::string text = "torch.Size([";
  for (std::size_t d = 0; d < shape.size(); ++d) text += (d ? ", " : "") + std::to_string(shape[d]);
  return text + "])";
}

/// An id tensor as PyTorch prints an int64 tensor: every cell right-aligned to the widest.
std::string format_ids(const attn::TensorView<const attn::Index, 2>& ids) {
  std::size_t width = 0;
  for (attn::Index i = 0; i < ids.size(0); ++i) {
    for (attn::Index j = 0; j < ids.size(1); ++j) {
      width = std::max(width, std::to_string(ids(i, j)).size());
    }
  }
  std::string text = "tensor([";
  for (attn::Index i = 0; i < ids.size(0); ++i) {
    text += i == 0 ? "[" : ",\n        [";
    for (attn::Index j = 0; j < ids.size(1); ++j) {
      const std::string cell = std::to_string(ids(i, j));
      text += (j ? ", " : "") + std::string(width - cell.size(), ' ') + cell;
    }
    text += "]";
  }
  return text + "])";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string text_path = argc > 1 ? argv[1] : ATTN_EXAMPLE_TEXT;
  const std::string tables = argc > 2 ? argv[2] : ATTN_GPT2_DATA_DIR;

  // Chapter 2's pipeline: tokenizer.encode(txt, allowed_special={'<|endoftext|>'}), then the
  // sliding window with max_length = stride = 4 and batches of 8, shuffled.
  const auto tokenizer = attn::text::Gpt2Tokenizer::from_directory(tables);
  std::vector<attn::Index> ids = tokenizer.encode(read_file(text_path), {"<|endoftext|>"});
  std::printf("token ids: %zu\n", ids.size());
  const attn::Index max_length = 4;
  const attn::GPTDatasetV1 dataset(std::move(ids), max_length, /*stride=*/max_length);
  std::printf("GPTDatasetV1(max_length=4, stride=4): %ld windows\n",
              static_cast<long>(dataset.size()));
  attn::DataLoader dataloader(dataset, /*batch_size=*/8, /*shuffle=*/true, /*drop_last=*/false,
                              attn::Generator(123));
  std::printf("DataLoader(batch_size=8, shuffle=True, seed 123): %ld batches\n\n",
              static_cast<long>(dataloader.size()));

  // for batch in dataloader: x, y = batch; ...; break
  const attn::Batch batch = *dataloader.begin();
  const auto& [x, y] = batch;
  std::printf("Token IDs:\n%s\n\nTargets:\n%s\n\n", format_ids(x).c_str(), format_ids(y).c_str());

  const attn::Index vocab_size = 50257, output_dim = 256, context_length = 1024;
  attn::Generator generator(123);
  const attn::Embedding<float> token_embedding_layer(vocab_size, output_dim, generator);
  const attn::Embedding<float> pos_embedding_layer(context_length, output_dim, generator);
  auto input_embeddings = token_embedding_layer.forward(x);                     // (8, 4, 256)
  const attn::Tensor<attn::Index, 2> positions({1, max_length}, {0, 1, 2, 3});  // arange(4)
  const auto pos_embeddings = pos_embedding_layer.forward(positions.view());    // (1, 4, 256)
  for (attn::Index b = 0; b < input_embeddings.size(0); ++b) {  // broadcast over the batch
    attn::as_matrix(attn::select(input_embeddings.view(), 0, b)) +=
        attn::as_matrix(attn::select(pos_embeddings.view(), 0, 0));
  }
  std::printf("token_embeddings.shape: %s\n", torch_size(input_embeddings.shape()).c_str());
  std::printf("pos_embeddings.shape: %s\n",
              torch_size(attn::select(pos_embeddings.view(), 0, 0).shape()).c_str());
  std::printf("input_embeddings.shape: %s\n", torch_size(input_embeddings.shape()).c_str());
  // Sequence 2 of the batch, each token's first 4 values (tests/data/gpt_dataset_test.cpp
  // checks these against PyTorch).
  const auto show = [](const char* title, const attn::Tensor<float, 3>& t) {
    std::printf("%s\n%s\n", title,
                attn::format_tensor(attn::slice(attn::select(t.view(), 0, 2), 1, 0, 4)).c_str());
  };
  show("input_embeddings[2, :, :4]", input_embeddings);

  // Variant A: the wrapper of num_heads CausalAttention heads, with the notebook's out_proj.
  const attn::Index d_in = output_dim, num_heads = 2;
  attn::MultiHeadAttentionWrapper<float>::Options options;
  options.out_proj = true;
  const attn::MultiHeadAttentionWrapper<float> wrapper(d_in, d_in / num_heads, max_length, 0.0f,
                                                       num_heads, options, attn::Generator(123));
  const auto context_a = wrapper.forward(input_embeddings.view());
  std::printf("\nVariant A: MultiHeadAttentionWrapper with out_proj (torch.manual_seed(123))\n");
  std::printf("context_vecs.shape: %s\n", torch_size(context_a.shape()).c_str());
  show("context_vecs[2, :, :4]", context_a);

  // Variant B: one set of projections split into heads, then out_proj.
  const attn::MultiHeadAttention<float> mha(d_in, d_in, max_length, 0.0f, num_heads, false,
                                            attn::Generator(123));
  const auto context_b = mha.forward(input_embeddings.view());
  std::printf("\nVariant B: MultiHeadAttention (torch.manual_seed(123))\n");
  std::printf("context_vecs.shape: %s\n", torch_size(context_b.shape()).c_str());
  show("context_vecs[2, :, :4]", context_b);
  return 0;
}
