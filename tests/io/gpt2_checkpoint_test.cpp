// GPT-2 checkpoints in the Hugging Face layout (attn/io/gpt2_checkpoint.hpp). The references
// are PyTorch's (tests/fixtures/generate_gpt2_checkpoint.py): a tiny random GPT-2 stated as the
// book's GPTModel, its state_dict under the book's names (gpt2_tiny_book.safetensors), the same
// weights converted by the script into transformers' layout (gpt2_tiny*/model.safetensors: F32
// without prefix, BF16 with "transformer." and lm_head.weight, F16 without config.json) and the
// model's eval-mode logits (gpt2_tiny.io.safetensors), for BF16 / F16 those of the weights
// rounded to that dtype. Errors are provoked by files the tests write from the fixture.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "attn/io/gpt2_checkpoint.hpp"
#include "attn/io/safetensors.hpp"
#include "support/expect_error.hpp"
#include "support/fixtures.hpp"
#include "support/normwise.hpp"

namespace {

using attn::Index;
using attn::io::Gpt2CheckpointError;
using attn::io::Gpt2Config;

constexpr Gpt2Config gpt2ckpt_tiny{101, 16, 24, 4, 2};  // the script's CFG

const attn::io::SafetensorsFile& gpt2ckpt_io() {
  static const attn::io::SafetensorsFile file = attn_test::read_fixture("gpt2_tiny.io.safetensors");
  return file;
}

/// `state` without the att.mask buffers, which are derived, not weights.
template <typename Scalar>
attn::StateDict<Scalar> gpt2ckpt_without_masks(attn::StateDict<Scalar> state) {
  for (auto it = state.begin(); it != state.end();) {
    it = it->first.size() > 9 && it->first.compare(it->first.size() - 9, 9, ".att.mask") == 0
             ? state.erase(it)
             : std::next(it);
  }
  return state;
}

template <typename Scalar>
attn::StateDict<Scalar> gpt2ckpt_book_state() {
  return gpt2ckpt_without_masks(
      attn::io::to_state_dict<Scalar>(attn_test::read_fixture("gpt2_tiny_book.safetensors")));
}

/// Passes when both hold the same names and shapes and, elementwise,
/// |mapped - book| <= relative |book| + absolute.
template <typename Scalar>
::testing::AssertionResult gpt2ckpt_same_state(const attn::StateDict<Scalar>& mapped,
                                               const attn::StateDict<Scalar>& book, double relative,
                                               double absolute) {
  std::string names;
  for (const auto& entry : mapped) names += entry.first + " ";
  if (mapped.size() != book.size()) {
    return ::testing::AssertionFailure() << mapped.size() << " mapped tensors vs " << book.size()
                                         << " in the book's state; mapped: " << names;
  }
  for (const auto& [name, expected] : book) {
    const auto found = mapped.find(name);
    if (found == mapped.end()) return ::testing::AssertionFailure() << "no mapped '" << name << "'";
    if (found->second.shape != expected.shape) {
      return ::testing::AssertionFailure()
             << "'" << name << "' has shape " << attn::detail::shape_string(found->second.shape)
             << " vs " << attn::detail::shape_string(expected.shape);
    }
    for (std::size_t i = 0; i < expected.values.size(); ++i) {
      const double a = found->second.values[i], e = expected.values[i];
      if (!(std::abs(a - e) <= relative * std::abs(e) + absolute)) {
        return ::testing::AssertionFailure()
               << "'" << name << "' element " << i << ": " << a << " vs the book's " << e;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// ---- The mapping ------------------------------------------------------------------------------

TEST(Gpt2CheckpointMapping, F32StateEqualsTheBookStateExactly) {
  // Every book name, shape and value, bit for bit: the transposes and the Q|K|V split only move
  // values.
  const auto file = attn_test::read_fixture("gpt2_tiny/model.safetensors");
  EXPECT_TRUE(gpt2ckpt_same_state(attn::io::gpt2_state_from_hf<float>(file, gpt2ckpt_tiny),
                                  gpt2ckpt_book_state<float>(), 0, 0));
  EXPECT_TRUE(gpt2ckpt_same_state(attn::io::gpt2_state_from_hf<double>(file, gpt2ckpt_tiny),
                                  gpt2ckpt_book_state<double>(), 0, 0));
}

TEST(Gpt2CheckpointMapping, HalfPrecisionStatesAreTheBookStateRounded) {
  // BF16 (8 significant bits) and F16 (11) are the book's float32 weights rounded to nearest:
  // within half a unit in the last place, 2^-8 and 2^-11 relative (F16 subnormals: 2^-25).
  // The BF16 file has GPT2LMHeadModel's names, prefix and lm_head.weight included.
  const auto bf16 = attn_test::read_fixture("gpt2_tiny_bf16/model.safetensors");
  const auto f16 = attn_test::read_fixture("gpt2_tiny_f16/model.safetensors");
  EXPECT_EQ(bf16.tensors.count("transformer.wte.weight"), 1u);
  EXPECT_EQ(bf16.tensors.count("lm_head.weight"), 1u);
  EXPECT_EQ(bf16.tensors.at("transformer.h.0.attn.c_attn.weight").dtype, attn::io::Dtype::BF16);
  EXPECT_EQ(f16.tensors.at("transformer.h.1.mlp.c_fc.weight").dtype, attn::io::Dtype::F16);
  const auto book = gpt2ckpt_book_state<float>();
  const auto from_bf16 = attn::io::gpt2_state_from_hf<float>(bf16, gpt2ckpt_tiny);
  EXPECT_TRUE(gpt2ckpt_same_state(from_bf16, book, std::ldexp(1.0, -8), 0));
  EXPECT_TRUE(gpt2ckpt_same_state(attn::io::gpt2_state_from_hf<float>(f16, gpt2ckpt_tiny), book,
                                  std::ldexp(1.0, -11), std::ldexp(1.0, -25)));
  // lm_head.weight is what out_head.weight holds; GPT-2 ties it to wte.
  EXPECT_EQ(from_bf16.at("out_head.weight").values, from_bf16.at("tok_emb.weight").values);
  // And the rounding did happen: the BF16 state is not the float32 one.
  EXPECT_FALSE(gpt2ckpt_same_state(from_bf16, book, 0, 0));
}

TEST(Gpt2CheckpointMapping, ConfigComesFromShapesAndConfigJson) {
  const auto shapes =
      attn::io::gpt2_config_from_shapes(attn_test::read_fixture("gpt2_tiny/model.safetensors"));
  EXPECT_EQ(shapes.vocab_size, 101);
  EXPECT_EQ(shapes.context_length, 16);
  EXPECT_EQ(shapes.emb_dim, 24);
  EXPECT_EQ(shapes.n_layers, 2);
  EXPECT_EQ(shapes.n_heads, 0);  // not stored in safetensors
  const auto json =
      attn::io::read_gpt2_config_json(attn_test::fixture_path("gpt2_tiny/config.json"));
  EXPECT_EQ(json.n_heads, 4);
  EXPECT_EQ(json.n_layers, 2);
  EXPECT_EQ(json.emb_dim, 24);
  EXPECT_EQ(json.context_length, 16);
  EXPECT_EQ(json.vocab_size, 101);
}

// ---- Logits of the loaded model against PyTorch's ------------------------------------------

/// ||attn's logits - PyTorch's||_F <= tolerance ||PyTorch's||_F; prints the measured ratio.
template <typename Scalar>
void gpt2ckpt_check_logits(const attn::GPTModel<Scalar>& model, const std::string& reference,
                           double tolerance) {
  const auto ids = attn::io::to_tensor<Index, 2>(gpt2ckpt_io(), "ids");
  const auto expected = attn::io::to_tensor<double, 3>(gpt2ckpt_io(), reference);
  const auto logits = model.forward(ids.view());
  const double scale = attn_test::frobenius(expected);
  const auto a = attn_test::values_of(logits), e = attn_test::values_of(expected);
  double error = 0;
  for (std::size_t i = 0; i < a.size() && a.size() == e.size(); ++i) {
    error += (a[i] - e[i]) * (a[i] - e[i]);
  }
  std::printf("  %s (%s): ||logits - PyTorch's|| / ||PyTorch's|| = %.3g\n", reference.c_str(),
              std::is_same_v<Scalar, float> ? "float" : "double", std::sqrt(error) / scale);
  EXPECT_TRUE(attn_test::close_normwise(logits, expected, scale, tolerance, reference));
}

// Normwise against ||logits||_F (314 here, largest |logit| 24). A logit is a 24-term product
// after two blocks of 24- and 96-term reductions and a LayerNorm; float rounding leaves about
// 1e-7 of that (measured in the comments below), so 1e-5 float and 1e-12 double keep a factor
// of ~50 and ~500 in hand while a wrong mapping moves logits by O(1).
constexpr double gpt2ckpt_float_tolerance = 1e-5;
constexpr double gpt2ckpt_double_tolerance = 1e-12;

TEST(Gpt2CheckpointLogits, F32CheckpointMatchesPyTorch) {
  // config.json beside the file gives n_heads.
  const auto path = attn_test::fixture_path("gpt2_tiny/model.safetensors");
  const auto model = attn::io::load_gpt2_checkpoint(path);
  EXPECT_EQ(model.config().n_heads, 4);
  EXPECT_EQ(model.config().n_layers, 2);
  EXPECT_TRUE(model.config().qkv_bias);
  gpt2ckpt_check_logits(model, "logits.f32", gpt2ckpt_float_tolerance);
  gpt2ckpt_check_logits(attn::io::load_gpt2_checkpoint<double>(path), "logits.f64",
                        gpt2ckpt_double_tolerance);
}

TEST(Gpt2CheckpointLogits, HalfPrecisionCheckpointsMatchPyTorchsRoundedWeights) {
  // The 16-bit weights widen to float exactly, so the reference (PyTorch's float32 forward from
  // the rounded weights) differs from attn by float rounding only, as for F32: the same 1e-5.
  // The F16 folder has no config.json: n_heads is passed.
  const auto bf16 =
      attn::io::load_gpt2_checkpoint(attn_test::fixture_path("gpt2_tiny_bf16/model.safetensors"));
  gpt2ckpt_check_logits(bf16, "logits.bf16", gpt2ckpt_float_tolerance);
  const auto f16 = attn::io::load_gpt2_checkpoint(
      attn_test::fixture_path("gpt2_tiny_f16/model.safetensors"), Index{4});
  gpt2ckpt_check_logits(f16, "logits.f16", gpt2ckpt_float_tolerance);
  // The references tell the dtypes apart: the BF16 model is far from the float32 logits.
  const auto ids = attn::io::to_tensor<Index, 2>(gpt2ckpt_io(), "ids");
  const auto f32 = attn::io::to_tensor<float, 3>(gpt2ckpt_io(), "logits.f32");
  EXPECT_FALSE(attn_test::close_normwise(bf16.forward(ids.view()), f32, attn_test::frobenius(f32),
                                         gpt2ckpt_float_tolerance));
}

// ---- Streaming into the model ------------------------------------------------------------------

TEST(Gpt2CheckpointStreaming, LoadedModelHoldsTheMappedStateExactly) {
  // load_gpt2_checkpoint reads the file tensor by tensor straight into the model (embedding
  // tables and head by rows, then block by block); the model must hold exactly what the
  // whole-file mapping gives, for each layout: F32 without prefix, BF16 with "transformer." and
  // lm_head.weight, F16 without config.json.
  const struct {
    const char* path;
    std::optional<Index> n_heads;
  } files[] = {{"gpt2_tiny/model.safetensors", std::nullopt},
               {"gpt2_tiny_bf16/model.safetensors", std::nullopt},
               {"gpt2_tiny_f16/model.safetensors", Index{4}}};
  for (const auto& file : files) {
    SCOPED_TRACE(file.path);
    const auto mapped =
        attn::io::gpt2_state_from_hf<float>(attn_test::read_fixture(file.path), gpt2ckpt_tiny);
    const auto path = attn_test::fixture_path(file.path);
    EXPECT_TRUE(gpt2ckpt_same_state(gpt2ckpt_without_masks(attn::state_dict(
                                        attn::io::load_gpt2_checkpoint(path, file.n_heads))),
                                    mapped, 0, 0));
    const auto wide =
        attn::io::gpt2_state_from_hf<double>(attn_test::read_fixture(file.path), gpt2ckpt_tiny);
    EXPECT_TRUE(gpt2ckpt_same_state(
        gpt2ckpt_without_masks(
            attn::state_dict(attn::io::load_gpt2_checkpoint<double>(path, file.n_heads))),
        wide, 0, 0));
  }
}

TEST(Gpt2CheckpointStreaming, Bfloat16WeightFormatEqualsConvertingTheLoadedModel) {
  // Gpt2LoadOptions::weight_format = bfloat16 rounds tok_emb, the projections and out_head as
  // they are read (the model never holds them in float): the same weights, bit for bit, and so
  // the same logits, as loading in float and calling set_weight_format(bfloat16).
  for (const char* name : {"gpt2_tiny/model.safetensors", "gpt2_tiny_bf16/model.safetensors"}) {
    SCOPED_TRACE(name);
    attn::io::Gpt2LoadOptions options;
    options.weight_format = attn::WeightFormat::bfloat16;
    auto rounded = attn::io::load_gpt2_checkpoint(attn_test::fixture_path(name), options);
    auto converted = attn::io::load_gpt2_checkpoint(attn_test::fixture_path(name));
    converted.set_weight_format(attn::WeightFormat::bfloat16);

    EXPECT_EQ(rounded.tok_emb().weight_format(), attn::WeightFormat::bfloat16);
    EXPECT_EQ(rounded.out_head().weight_format(), attn::WeightFormat::bfloat16);
    for (auto& block : rounded.trf_blocks()) {
      EXPECT_EQ(block.att().out_proj().weight_format(), attn::WeightFormat::bfloat16);
      EXPECT_EQ(block.ff().layer0().weight_format(), attn::WeightFormat::bfloat16);
    }
    EXPECT_FALSE(rounded.is_training());
    EXPECT_TRUE(gpt2ckpt_same_state(attn::state_dict(rounded), attn::state_dict(converted), 0, 0));
    const auto ids = attn::io::to_tensor<Index, 2>(gpt2ckpt_io(), "ids");
    EXPECT_EQ(attn_test::values_of(rounded.forward(ids.view())),
              attn_test::values_of(converted.forward(ids.view())));
  }
}

// ---- Errors ----------------------------------------------------------------------------------

/// A folder of its own under the test temp dir, holding model.safetensors (and config.json when
/// `config` is not empty); removed by the destructor.
class Gpt2CkptScratch {
 public:
  Gpt2CkptScratch(const std::string& name, const attn::io::SafetensorsFile& file,
                  const std::string& config = "")
      : folder_(std::filesystem::path(::testing::TempDir()) / ("attn_gpt2ckpt_" + name)) {
    std::filesystem::create_directories(folder_);
    attn::io::write_safetensors(path(), file);
    std::filesystem::remove(folder_ / "config.json");
    if (!config.empty()) std::ofstream(folder_ / "config.json") << config;
  }
  ~Gpt2CkptScratch() {
    std::error_code ignored;
    std::filesystem::remove_all(folder_, ignored);
  }
  Gpt2CkptScratch(const Gpt2CkptScratch&) = delete;
  Gpt2CkptScratch& operator=(const Gpt2CkptScratch&) = delete;
  std::string path() const { return (folder_ / "model.safetensors").string(); }
  std::string config_path() const { return (folder_ / "config.json").string(); }

 private:
  std::filesystem::path folder_;
};

attn::io::SafetensorsFile gpt2ckpt_f32_file() {
  return attn_test::read_fixture("gpt2_tiny/model.safetensors");
}

std::string gpt2ckpt_config_text() {
  std::ifstream in(attn_test::fixture_path("gpt2_tiny/config.json"));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// The fixture's config.json with `field`'s value text replaced by `value`.
std::string gpt2ckpt_config_with(const std::string& field, const std::string& value) {
  std::string text = gpt2ckpt_config_text();
  const std::size_t at = text.find("\"" + field + "\": ");
  if (at == std::string::npos) return text;
  const std::size_t begin = at + field.size() + 4, end = text.find_first_of(",\n", begin);
  return text.replace(begin, end - begin, value);
}

TEST(Gpt2CheckpointErrors, MissingTensorIsNamedWithItsShape) {
  auto file = gpt2ckpt_f32_file();
  file.tensors.erase("h.1.mlp.c_fc.weight");
  file.tensors.erase("ln_f.bias");
  const Gpt2CkptScratch scratch("missing", file, gpt2ckpt_config_text());
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(scratch.path()), Gpt2CheckpointError,
                    {scratch.path().c_str(), "missing tensor 'h.1.mlp.c_fc.weight' (24, 96)",
                     "missing tensor 'ln_f.bias' (24)"});
}

TEST(Gpt2CheckpointErrors, UnexpectedTensorIsNamedWithItsShape) {
  auto file = gpt2ckpt_f32_file();
  file.tensors["h.0.attn.c_attn.lora"] = file.tensors.at("h.0.ln_1.bias");
  file.tensors["score.weight"] = file.tensors.at("h.0.ln_1.weight");
  const Gpt2CkptScratch scratch("unexpected", file, gpt2ckpt_config_text());
  ATTN_EXPECT_ERROR(
      attn::io::load_gpt2_checkpoint(scratch.path()), Gpt2CheckpointError,
      {"unexpected tensor 'h.0.attn.c_attn.lora' (24)", "unexpected tensor 'score.weight' (24)"});
}

TEST(Gpt2CheckpointErrors, MisShapedTensorNamesBothShapes) {
  // The classic mistake: a projection saved as nn.Linear's (out, in) instead of Conv1D's.
  auto file = gpt2ckpt_f32_file();
  file.tensors.at("h.0.attn.c_attn.weight").shape = {72, 24};
  file.tensors["lm_head.weight"] = file.tensors.at("wte.weight");
  file.tensors.at("lm_head.weight").shape = {24, 101};
  const Gpt2CkptScratch scratch("misshaped", file, gpt2ckpt_config_text());
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(scratch.path()), Gpt2CheckpointError,
                    {"'h.0.attn.c_attn.weight' has shape (72, 24) but (24, 72) is expected",
                     "'lm_head.weight' has shape (24, 101) but (101, 24) is expected"});
  // Through the lower-level call, a config that does not fit the file: wte is mis-shaped.
  Gpt2Config wider = gpt2ckpt_tiny;
  wider.emb_dim = 48;
  ATTN_EXPECT_ERROR(attn::io::gpt2_state_from_hf<float>(gpt2ckpt_f32_file(), wider, "<tiny>"),
                    Gpt2CheckpointError,
                    {"<tiny>", "'wte.weight' has shape (101, 24) but (101, 48) is expected"});
}

TEST(Gpt2CheckpointErrors, InconsistentLayerCountIsNamed) {
  // Blocks h.0 and h.2: two blocks, so h.1's tensors are missing and h.2's unexpected.
  auto file = gpt2ckpt_f32_file();
  attn::io::SafetensorsFile gap;
  for (const auto& [name, tensor] : file.tensors) {
    std::string renamed = name;
    if (name.compare(0, 4, "h.1.") == 0) renamed = "h.2." + name.substr(4);
    gap.tensors[renamed] = tensor;
  }
  const Gpt2CkptScratch scratch("gap", gap);
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(scratch.path(), Index{4}), Gpt2CheckpointError,
                    {"missing tensor 'h.1.ln_1.weight' (24)",
                     "unexpected tensor 'h.2.mlp.c_proj.weight' (96, 24)",
                     "(the file's blocks are h.0, h.2; a GPT-2 with n_layers 2 has h.0 ... h.1)"});
  // config.json saying 3 layers of a 2-block file.
  const Gpt2CkptScratch json("layers", file, gpt2ckpt_config_with("n_layer", "3"));
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(json.path()), Gpt2CheckpointError,
                    {"config.json has n_layer 3 but the file has 2 (blocks h.0, h.1)"});
  // And the other sizes config.json states.
  const Gpt2CkptScratch embd("embd", file, gpt2ckpt_config_with("n_embd", "48"));
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(embd.path()), Gpt2CheckpointError,
                    {"config.json has n_embd 48 but the file has 24 (wte.weight (101, 24))"});
}

TEST(Gpt2CheckpointErrors, NumberOfHeadsMustBeKnownAndDivideTheWidth) {
  const auto f16 = attn_test::fixture_path("gpt2_tiny_f16/model.safetensors");
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(f16), Gpt2CheckpointError,
                    {"gpt2_tiny_f16/model.safetensors", "not stored in a safetensors file",
                     "config.json", "pass n_heads"});
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(f16, Index{5}), Gpt2CheckpointError,
                    {"n_heads (5) must divide emb_dim (n_embd, 24)"});
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(f16, Index{0}), Gpt2CheckpointError,
                    {"n_heads (0) must be positive"});
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(
                        attn_test::fixture_path("gpt2_tiny/model.safetensors"), Index{3}),
                    Gpt2CheckpointError, {"n_heads (3) disagrees with config.json's n_head (4)"});
}

TEST(Gpt2CheckpointErrors, ConfigJsonTheBookCannotComputeIsRefused) {
  const auto file = gpt2ckpt_f32_file();
  const struct {
    const char* field;
    const char* value;
    const char* message;
  } cases[] = {
      {"layer_norm_epsilon", "1e-06", "'layer_norm_epsilon' is 1e-06: the book's LayerNorm"},
      {"activation_function", "\"gelu\"", "'activation_function' is \"gelu\": the book's GELU"},
      {"model_type", "\"llama\"", "'model_type' is \"llama\""},
      {"scale_attn_weights", "false", "'scale_attn_weights' is false"},
      {"n_inner", "64", "'n_inner' is 64: the book's feed-forward is 4 x n_embd = 96 wide"},
      {"n_head", "\"4\"", "'n_head' is \"4\"; a positive integer is needed"},
  };
  for (const auto& c : cases) {
    const Gpt2CkptScratch scratch(c.field, file, gpt2ckpt_config_with(c.field, c.value));
    ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(scratch.path()), Gpt2CheckpointError,
                      {"config.json", c.message});
  }
  std::string no_head = gpt2ckpt_config_text();
  no_head.erase(no_head.find("  \"n_head\": 4,\n"), 15);
  const Gpt2CkptScratch scratch("no_head", file, no_head);
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(scratch.path()), Gpt2CheckpointError,
                    {"config.json: has no 'n_head'"});
  const Gpt2CkptScratch broken("broken", file, "{\"n_head\": ");
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(broken.path()), Gpt2CheckpointError,
                    {"config.json: is not valid JSON"});
  // gelu_pytorch_tanh is the same tanh form: accepted. An explicit config_path is read.
  const Gpt2CkptScratch tanh_form(
      "tanh", file, gpt2ckpt_config_with("activation_function", "\"gelu_pytorch_tanh\""));
  attn::io::Gpt2LoadOptions options;
  options.config_path = tanh_form.config_path();
  EXPECT_EQ(attn::io::load_gpt2_checkpoint(
                attn_test::fixture_path("gpt2_tiny_f16/model.safetensors"), options)
                .config()
                .n_heads,
            4);
}

TEST(Gpt2CheckpointErrors, FilesThatAreNotGpt2AreRefused) {
  auto file = gpt2ckpt_f32_file();
  file.tensors.erase("wte.weight");
  ATTN_EXPECT_ERROR(attn::io::gpt2_config_from_shapes(file, "<nowte>"), Gpt2CheckpointError,
                    {"<nowte>", "has no tensor 'wte.weight' (nor 'transformer.wte.weight')",
                     "it holds 'h.0.attn.bias'"});
  // A parameter stored as an integer type: the safetensors reader's message, naming it.
  file = gpt2ckpt_f32_file();
  file.tensors.at("h.0.ln_2.bias").dtype = attn::io::Dtype::I32;
  const Gpt2CkptScratch scratch("int", file, gpt2ckpt_config_text());
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint(scratch.path()), attn::io::SafetensorsError,
                    {"parameter 'h.0.ln_2.bias' has dtype I32"});
  ATTN_EXPECT_ERROR(attn::io::load_gpt2_checkpoint("/nonexistent/model.safetensors", Index{4}),
                    attn::io::SafetensorsError, {"/nonexistent/model.safetensors", "cannot open"});
}

}  // namespace
