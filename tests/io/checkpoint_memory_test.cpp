// Checkpoint loading streams (issue 23, "lean inference"): load_gpt2_checkpoint's peak memory is
// the model plus a block's worth of pieces, not the file and a state_dict of it beside the model
// (the whole-file loader peaked at about twice the model). Linux only: the peak resident set
// (VmHWM) is reset through /proc/self/clear_refs before the load and read after it. Skipped under
// the sanitizers, whose shadow memory and quarantine make resident memory mean something else.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "attn/io/gpt2_checkpoint.hpp"
#include "attn/io/safetensors.hpp"
#include "attn/tensor/buffer_pool.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool ckptmem_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool ckptmem_sanitized = true;
#else
constexpr bool ckptmem_sanitized = false;
#endif
#else
constexpr bool ckptmem_sanitized = false;
#endif

using attn::Index;

/// A field of /proc/self/status ("VmRSS", "VmHWM") in bytes, or -1 where there is none.
double ckptmem_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) * 1024;
  }
  return -1;
}

/// Sets VmHWM to the current resident set (Linux 4.0 and later); false where that is refused.
bool ckptmem_reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out) && ckptmem_status_bytes("VmHWM") > 0;
}

// A GPT-2 whose embedding tables dominate, as GPT-2's do (wte is 30 % of the 124M file, and
// attn's untied out_head doubles it): vocab 16384, context 64, emb 256, 4 heads, 2 layers.
constexpr attn::io::Gpt2Config ckptmem_config{16384, 64, 256, 4, 2};

/// The config's tensors in the Hugging Face layout, F32, with small values, written to `path`.
void ckptmem_write_checkpoint(const std::string& path) {
  const Index V = ckptmem_config.vocab_size, C = ckptmem_config.context_length,
              E = ckptmem_config.emb_dim;
  attn::io::SafetensorsFile file;
  const auto add = [&](const std::string& name, std::vector<Index> shape) {
    attn::io::SafetensorsTensor& tensor = file.tensors[name];
    tensor.shape = std::move(shape);
    Index count = 1;
    for (const Index extent : tensor.shape) count *= extent;
    std::vector<float> values(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < values.size(); ++i) {
      values[i] = 0.02f * static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
    }
    tensor.bytes.resize(values.size() * sizeof(float));
    std::memcpy(tensor.bytes.data(), values.data(), tensor.bytes.size());
  };
  add("wte.weight", {V, E});
  add("wpe.weight", {C, E});
  for (Index n = 0; n < ckptmem_config.n_layers; ++n) {
    const std::string h = "h." + std::to_string(n) + ".";
    for (const char* norm : {"ln_1.", "ln_2."}) {
      add(h + norm + "weight", {E});
      add(h + norm + "bias", {E});
    }
    add(h + "attn.c_attn.weight", {E, 3 * E});
    add(h + "attn.c_attn.bias", {3 * E});
    add(h + "attn.c_proj.weight", {E, E});
    add(h + "attn.c_proj.bias", {E});
    add(h + "mlp.c_fc.weight", {E, 4 * E});
    add(h + "mlp.c_fc.bias", {4 * E});
    add(h + "mlp.c_proj.weight", {4 * E, E});
    add(h + "mlp.c_proj.bias", {E});
  }
  add("ln_f.weight", {E});
  add("ln_f.bias", {E});
  attn::io::write_safetensors(path, file);
}

/// The peak resident set added while loading `path`, in bytes.
double ckptmem_load_peak(const std::string& path, attn::WeightFormat format) {
  // What earlier work freed goes back to the system, so that this load cannot reuse it unseen.
  attn::release_buffer_pool();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  const double before = ckptmem_status_bytes("VmRSS");
  EXPECT_TRUE(ckptmem_reset_peak());
  attn::io::Gpt2LoadOptions options;
  options.n_heads = ckptmem_config.n_heads;
  options.weight_format = format;
  const auto model = attn::io::load_gpt2_checkpoint(path, options);
  const double peak = ckptmem_status_bytes("VmHWM");
  EXPECT_EQ(model.tok_emb().weight_format(), format);
  return peak - before;
}

TEST(Gpt2CheckpointMemory, LoadingHoldsTheModelAndOneBlockNotTheFileTwice) {
  if (ckptmem_sanitized) GTEST_SKIP() << "resident memory under a sanitizer is not the program's";
  if (!ckptmem_reset_peak()) GTEST_SKIP() << "/proc/self/clear_refs cannot reset the peak here";
  const std::filesystem::path folder =
      std::filesystem::path(::testing::TempDir()) / "attn_checkpoint_memory";
  std::filesystem::create_directories(folder);
  const std::string path = (folder / "model.safetensors").string();
  ckptmem_write_checkpoint(path);

  // What the model must hold, from the config: tok_emb and the untied out_head (V E each), the
  // projections (12 E^2 a block), in 4 bytes or, stored as bfloat16, 2; pos_emb, the biases
  // and the LayerNorms (C E + 13 E a block + 2 E) stay in float.
  const double V = 16384, C = 64, E = 256, L = 2;
  const double stored = 2 * V * E + L * 12 * E * E, kept = C * E + L * 13 * E + 2 * E;
  const double model_float = 4 * (stored + kept), model_bfloat16 = 2 * stored + 4 * kept;
  // At once the loader may also hold one block in float three times over: the block's state
  // read from the file, one tensor being converted, and the block's own widened weights (a
  // bfloat16 block is loaded in float, then rounded), plus 4 MiB for the rows it streams, the
  // stream's buffer and allocator slack. The whole-file loader held the file (twice while it
  // parsed), then a float state_dict beside the model: over 2 x model_float.
  const double block = 4 * (12 * E * E + 13 * E);
  const double slack = 3 * block + 4 * 1048576.0;

  const double float_peak = ckptmem_load_peak(path, attn::WeightFormat::scalar);
  const double bfloat16_peak = ckptmem_load_peak(path, attn::WeightFormat::bfloat16);
  std::printf(
      "  peak added while loading: float %.1f MB (model %.1f MB), bfloat16 %.1f MB "
      "(model %.1f MB); bound: model + %.1f MB\n",
      float_peak / 1e6, model_float / 1e6, bfloat16_peak / 1e6, model_bfloat16 / 1e6, slack / 1e6);
  EXPECT_LE(float_peak, model_float + slack);
  EXPECT_LE(bfloat16_peak, model_bfloat16 + slack);
  std::filesystem::remove_all(folder);
}

}  // namespace
