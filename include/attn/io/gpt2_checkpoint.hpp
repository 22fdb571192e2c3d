// attn/io/gpt2_checkpoint.hpp: OpenAI's GPT-2 weights, as the Hugging Face hub distributes them
// (`model.safetensors` + `config.json`), loaded into the book's chapter-4 GPTModel. Part of the
// component attn::io; docs/checkpoints.md shows the download and the whole mapping.
//
// transformers names GPT-2's tensors after its own modules and stores every projection as a
// Conv1D, whose weight is (in, out), the transpose of nn.Linear's (out, in); the query, key and
// value projections are one Conv1D, c_attn, packed query | key | value along its output. The book
// (ch05's load_weights_into_gpt) undoes both: each weight transposed, c_attn split in three.
// Per block N (names may carry the prefix "transformer.", as GPT2LMHeadModel's do):
//
//   wte.weight (V, E)                          tok_emb.weight                    as is
//   wpe.weight (C, E)                          pos_emb.weight                    as is
//   h.N.ln_1.weight / .bias (E)                trf_blocks.N.norm1.scale / .shift
//   h.N.attn.c_attn.weight (E, 3E)             trf_blocks.N.att.W_query / W_key / W_value
//                                              .weight (E, E): columns [0, E), [E, 2E), [2E, 3E),
//                                              each transposed
//   h.N.attn.c_attn.bias (3E)                  ... W_query / W_key / W_value .bias: split in three
//   h.N.attn.c_proj.weight (E, E), .bias       trf_blocks.N.att.out_proj.weight (transposed), .bias
//   h.N.ln_2.weight / .bias                    trf_blocks.N.norm2.scale / .shift
//   h.N.mlp.c_fc.weight (E, 4E), .bias (4E)    trf_blocks.N.ff.layers.0.weight (4E, E), .bias
//   h.N.mlp.c_proj.weight (4E, E), .bias (E)   trf_blocks.N.ff.layers.2.weight (E, 4E), .bias
//   ln_f.weight / .bias                        final_norm.scale / .shift
//   lm_head.weight (V, E), when present        out_head.weight; absent (GPT-2 ties it to wte):
//                                              out_head.weight = wte.weight
//   h.N.attn.bias, h.N.attn.masked_bias        ignored (GPT-2's causal-mask buffers; attn derives
//                                              the mask)
//
// The number of heads is not in a safetensors file: it comes from config.json (n_head) or from
// the caller. Everything is checked before a model is built: missing, unexpected and mis-shaped
// tensors are listed together, each with its shape and the expected one.
#ifndef ATTN_IO_GPT2_CHECKPOINT_HPP
#define ATTN_IO_GPT2_CHECKPOINT_HPP

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/io/safetensors.hpp"
#include "attn/models/gpt_model.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/buffer_pool.hpp"

namespace attn::io {

/// A GPT-2 checkpoint could not be used: a config.json attn cannot honour, missing, unexpected
/// or mis-shaped tensors, or hyper-parameters that disagree. The message names the file, the
/// tensors, their shapes and the expected ones.
class Gpt2CheckpointError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// GPT-2's hyper-parameters under the book's names (its GPT_CONFIG_124M is {50257, 1024, 768,
/// 12, 12}); transformers calls them vocab_size, n_positions, n_embd, n_head and n_layer.
struct Gpt2Config {
  Index vocab_size = 0;
  Index context_length = 0;
  Index emb_dim = 0;
  Index n_heads = 0;
  Index n_layers = 0;
};

namespace detail {

[[noreturn]] inline void gpt2_fail(const std::string& source, const std::string& what) {
  throw Gpt2CheckpointError("GPT-2 checkpoint " + source + ": " + what);
}

/// "transformer." when the file holds GPT2LMHeadModel's names, "" for GPT2Model's. `Tensors`
/// maps names to anything with a shape: a SafetensorsFile's tensors or a SafetensorsReader's.
template <typename Tensors>
std::string gpt2_prefix(const Tensors& tensors, const std::string& source) {
  if (tensors.count("transformer.wte.weight") != 0) return "transformer.";
  if (tensors.count("wte.weight") != 0) return "";
  gpt2_fail(source,
            "has no tensor 'wte.weight' (nor 'transformer.wte.weight'), so it is not a "
            "Hugging Face GPT-2 checkpoint; it holds " +
                first_names(tensors, 6));
}

/// The block number N of a name "<prefix>h.N.<rest>", or -1 for any other name.
inline Index gpt2_block_of(const std::string& name, const std::string& prefix) {
  const std::string head = prefix + "h.";
  if (name.compare(0, head.size(), head) != 0) return -1;
  const std::size_t dot = name.find('.', head.size());
  if (dot == std::string::npos) return -1;
  const std::string digits = name.substr(head.size(), dot - head.size());
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  return static_cast<Index>(std::stol(digits));
}

/// The block numbers N of the names "<prefix>h.N.*".
template <typename Tensors>
std::set<Index> gpt2_block_numbers(const Tensors& tensors, const std::string& prefix) {
  std::set<Index> blocks;
  for (const auto& entry : tensors) {
    const Index block = gpt2_block_of(entry.first, prefix);
    if (block >= 0) blocks.insert(block);
  }
  return blocks;
}

/// The block numbers a file holds, as "h.0, h.1, h.3" (at most 8 shown).
template <typename Tensors>
std::string gpt2_blocks(const Tensors& tensors, const std::string& prefix) {
  const std::set<Index> blocks = gpt2_block_numbers(tensors, prefix);
  std::string text;
  std::size_t shown = 0;
  for (const Index block : blocks) {
    if (shown++ == 8) return text + attn::detail::concat(", ... (", blocks.size(), " blocks)");
    text += (text.empty() ? "" : ", ") + prefix + "h." + std::to_string(block);
  }
  return text;
}

/// How one tensor of the file becomes the book's.
enum class Gpt2Map { copy, transpose, split_qkv_weight, split_qkv_bias };

struct Gpt2Entry {
  std::string name;  // the file's name, prefix included
  std::vector<Index> shape;
  Gpt2Map map;
  std::string book;  // the book's name; for the splits, the prefix "trf_blocks.N.att."
};

/// The tensors of block `h` ("<prefix>h.N."), under book names starting with `book`
/// ("trf_blocks.N.", or "" for names relative to the block).
inline std::vector<Gpt2Entry> gpt2_block_entries(Index E, const std::string& h,
                                                 const std::string& book) {
  return {{h + "ln_1.weight", {E}, Gpt2Map::copy, book + "norm1.scale"},
          {h + "ln_1.bias", {E}, Gpt2Map::copy, book + "norm1.shift"},
          {h + "attn.c_attn.weight", {E, 3 * E}, Gpt2Map::split_qkv_weight, book + "att."},
          {h + "attn.c_attn.bias", {3 * E}, Gpt2Map::split_qkv_bias, book + "att."},
          {h + "attn.c_proj.weight", {E, E}, Gpt2Map::transpose, book + "att.out_proj.weight"},
          {h + "attn.c_proj.bias", {E}, Gpt2Map::copy, book + "att.out_proj.bias"},
          {h + "ln_2.weight", {E}, Gpt2Map::copy, book + "norm2.scale"},
          {h + "ln_2.bias", {E}, Gpt2Map::copy, book + "norm2.shift"},
          {h + "mlp.c_fc.weight", {E, 4 * E}, Gpt2Map::transpose, book + "ff.layers.0.weight"},
          {h + "mlp.c_fc.bias", {4 * E}, Gpt2Map::copy, book + "ff.layers.0.bias"},
          {h + "mlp.c_proj.weight", {4 * E, E}, Gpt2Map::transpose, book + "ff.layers.2.weight"},
          {h + "mlp.c_proj.bias", {E}, Gpt2Map::copy, book + "ff.layers.2.bias"}};
}

/// ln_f, under book names starting with `book` ("final_norm.", or "" for the LayerNorm's own).
inline std::vector<Gpt2Entry> gpt2_final_norm_entries(Index E, const std::string& prefix,
                                                      const std::string& book) {
  return {{prefix + "ln_f.weight", {E}, Gpt2Map::copy, book + "scale"},
          {prefix + "ln_f.bias", {E}, Gpt2Map::copy, book + "shift"}};
}

/// Every tensor a GPT-2 of `config` holds (lm_head.weight and the mask buffers excepted).
inline std::vector<Gpt2Entry> gpt2_entries(const Gpt2Config& c, const std::string& prefix) {
  std::vector<Gpt2Entry> entries = {
      {prefix + "wte.weight", {c.vocab_size, c.emb_dim}, Gpt2Map::copy, "tok_emb.weight"},
      {prefix + "wpe.weight", {c.context_length, c.emb_dim}, Gpt2Map::copy, "pos_emb.weight"}};
  for (Index n = 0; n < c.n_layers; ++n) {
    const std::vector<Gpt2Entry> block =
        gpt2_block_entries(c.emb_dim, prefix + "h." + std::to_string(n) + ".",
                           "trf_blocks." + std::to_string(n) + ".");
    entries.insert(entries.end(), block.begin(), block.end());
  }
  const std::vector<Gpt2Entry> final_norm =
      gpt2_final_norm_entries(c.emb_dim, prefix, "final_norm.");
  entries.insert(entries.end(), final_norm.begin(), final_norm.end());
  return entries;
}

/// Adds the book's tensor(s) that file tensor `entry`, converted to `values`, becomes: a copy,
/// a transpose of a Conv1D weight, or c_attn split in three.
template <typename Scalar>
void add_gpt2_book_tensors(const Gpt2Entry& entry, std::vector<Scalar> values, Index E,
                           StateDict<Scalar>& state) {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto transposed = [](const Scalar* data, Index rows, Index cols, Index stride) {
    NamedTensor<Scalar> out{{cols, rows},
                            std::vector<Scalar>(static_cast<std::size_t>(rows * cols))};
    Eigen::Map<Matrix>(out.values.data(), cols, rows) =
        Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>(data, rows, cols,
                                                          Eigen::OuterStride<>(stride))
            .transpose();
    return out;
  };
  static const char* const qkv[] = {"W_query", "W_key", "W_value"};
  switch (entry.map) {
    case Gpt2Map::copy:
      state[entry.book] = {entry.shape, std::move(values)};
      break;
    case Gpt2Map::transpose:
      state[entry.book] = transposed(values.data(), entry.shape[0], entry.shape[1], entry.shape[1]);
      break;
    case Gpt2Map::split_qkv_weight:  // (E, 3E): columns [p E, (p + 1) E) are part p
      for (int p = 0; p < 3; ++p) {
        state[entry.book + qkv[p] + ".weight"] = transposed(values.data() + p * E, E, E, 3 * E);
      }
      break;
    case Gpt2Map::split_qkv_bias:
      for (int p = 0; p < 3; ++p) {
        state[entry.book + qkv[p] + ".bias"] = {
            {E}, std::vector<Scalar>(values.begin() + p * E, values.begin() + (p + 1) * E)};
      }
      break;
  }
}

inline void check_gpt2_config(const Gpt2Config& c, const std::string& source) {
  const std::pair<const char*, Index> sizes[] = {{"vocab_size", c.vocab_size},
                                                 {"context_length", c.context_length},
                                                 {"emb_dim", c.emb_dim},
                                                 {"n_heads", c.n_heads},
                                                 {"n_layers", c.n_layers}};
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      gpt2_fail(source, attn::detail::concat(name, " (", value, ") must be positive"));
    }
  }
  if (c.emb_dim % c.n_heads != 0) {
    gpt2_fail(source, attn::detail::concat("n_heads (", c.n_heads,
                                           ") must divide emb_dim (n_embd, ", c.emb_dim, ")"));
  }
}

/// The problems found, one line each; after 40 lines only counted. `note` closes the list.
struct Gpt2Problems {
  std::string text, note;
  int count = 0;
  void add(const std::string& line) {
    if (count++ < 40) text += "\n  " + line;
  }
  std::string str() const {
    return (count > 40 ? text + attn::detail::concat("\n  ... and ", count - 40, " more") : text) +
           note;
  }
};

}  // namespace detail

namespace detail {

template <typename Tensors>
Gpt2Config gpt2_config_from_shapes(const Tensors& tensors, const std::string& source) {
  const std::string prefix = gpt2_prefix(tensors, source);
  const auto matrix = [&](const std::string& name) -> const std::vector<Index>& {
    const auto found = tensors.find(prefix + name);
    if (found == tensors.end()) gpt2_fail(source, "has no tensor '" + prefix + name + "'");
    if (found->second.shape.size() != 2) {
      gpt2_fail(source, "tensor '" + prefix + name + "' has shape " +
                            attn::detail::shape_string(found->second.shape) +
                            " but GPT-2's is a matrix (rows, n_embd)");
    }
    return found->second.shape;
  };
  Gpt2Config config;
  config.vocab_size = matrix("wte.weight")[0];
  config.emb_dim = matrix("wte.weight")[1];
  config.context_length = matrix("wpe.weight")[0];
  const std::set<Index> blocks = gpt2_block_numbers(tensors, prefix);
  if (blocks.empty()) gpt2_fail(source, "has no transformer block ('" + prefix + "h.0.*')");
  config.n_layers = static_cast<Index>(blocks.size());
  return config;
}

}  // namespace detail

/// GPT-2's sizes as the tensors of a Hugging Face file show them: vocab_size and emb_dim from
/// wte.weight, context_length from wpe.weight, n_layers the number of distinct blocks h.N;
/// n_heads is not stored in safetensors and is left 0. `source` names the file in messages.
/// @throws Gpt2CheckpointError if the file has no wte.weight / wpe.weight of rank 2, or no block.
inline Gpt2Config gpt2_config_from_shapes(const SafetensorsFile& file,
                                          const std::string& source = "<memory>") {
  return detail::gpt2_config_from_shapes(file.tensors, source);
}

/// Reads transformers' config.json for GPT-2 (GPT2Config): n_head, n_layer, n_embd, n_positions
/// and vocab_size are required. What the book's GPTModel cannot compute is refused:
/// layer_norm_epsilon other than 1e-5, activation_function other than gelu_new (or
/// gelu_pytorch_tanh, the same tanh form), scale_attn_weights false,
/// scale_attn_by_inverse_layer_idx or add_cross_attention true, n_inner other than null or
/// 4 n_embd, model_type other than gpt2. Absent optional fields take GPT2Config's defaults, which
/// are the book's. Dropout rates are training settings and are not read.
/// @throws Gpt2CheckpointError naming the file and the field.
inline Gpt2Config read_gpt2_config_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) detail::gpt2_fail(path, "cannot open the file");
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    detail::gpt2_fail(path, std::string("is not valid JSON: ") + error.what());
  }
  const nlohmann::json& json = parsed;  // const: operator[] below reads keys known to exist
  if (!json.is_object()) detail::gpt2_fail(path, "is not a JSON object");
  const auto size = [&](const char* key) {
    if (!json.contains(key)) detail::gpt2_fail(path, std::string("has no '") + key + "'");
    const auto& value = json.at(key);
    if (!value.is_number_integer() || value.get<long long>() <= 0) {
      detail::gpt2_fail(
          path, std::string("'") + key + "' is " + value.dump() + "; a positive integer is needed");
    }
    return static_cast<Index>(value.get<long long>());
  };
  Gpt2Config config;
  config.n_heads = size("n_head");
  config.n_layers = size("n_layer");
  config.emb_dim = size("n_embd");
  config.context_length = size("n_positions");
  config.vocab_size = size("vocab_size");

  const auto refuse = [&](const char* key, const std::string& why) {
    detail::gpt2_fail(path, std::string("'") + key + "' is " + json.at(key).dump() + ": " + why);
  };
  if (json.contains("model_type") && json["model_type"] != "gpt2") {
    refuse("model_type", "attn reads GPT-2 checkpoints (model_type \"gpt2\") only");
  }
  if (json.contains("layer_norm_epsilon") && !(json["layer_norm_epsilon"].is_number() &&
                                               json["layer_norm_epsilon"].get<double>() == 1e-5)) {
    refuse("layer_norm_epsilon", "the book's LayerNorm has eps 1e-5");
  }
  if (json.contains("activation_function") && json["activation_function"] != "gelu_new" &&
      json["activation_function"] != "gelu_pytorch_tanh") {
    refuse("activation_function",
           "the book's GELU is the tanh approximation (transformers' gelu_new)");
  }
  if (json.contains("scale_attn_weights") && json["scale_attn_weights"] != true) {
    refuse("scale_attn_weights", "the book's attention divides the scores by sqrt(head_dim)");
  }
  if (json.contains("scale_attn_by_inverse_layer_idx") &&
      json["scale_attn_by_inverse_layer_idx"] != false) {
    refuse("scale_attn_by_inverse_layer_idx", "the book's attention does not scale by layer");
  }
  if (json.contains("add_cross_attention") && json["add_cross_attention"] != false) {
    refuse("add_cross_attention", "the book's GPT has no cross-attention");
  }
  if (json.contains("n_inner") && !json["n_inner"].is_null() &&
      !(json["n_inner"].is_number_integer() &&
        json["n_inner"].get<long long>() == 4 * static_cast<long long>(config.emb_dim))) {
    refuse("n_inner", attn::detail::concat(
                          "the book's feed-forward is 4 x n_embd = ", 4 * config.emb_dim, " wide"));
  }
  return config;
}

namespace detail {

/// Checks that `tensors` hold the GPT-2 of `config`, listing every missing, unexpected and
/// mis-shaped tensor at once, and that each parameter is stored as a floating dtype.
template <typename Tensors>
void check_gpt2_tensors(const Tensors& tensors, const Gpt2Config& config, const std::string& prefix,
                        const std::string& source) {
  check_gpt2_config(config, source);
  const std::vector<Gpt2Entry> entries = gpt2_entries(config, prefix);
  const std::vector<Index> lm_head_shape = {config.vocab_size, config.emb_dim};
  Gpt2Problems problems;
  std::set<std::string> known;
  for (const auto& entry : entries) {
    known.insert(entry.name);
    const auto found = tensors.find(entry.name);
    if (found == tensors.end()) {
      problems.add("missing tensor '" + entry.name + "' " +
                   attn::detail::shape_string(entry.shape));
    } else if (found->second.shape != entry.shape) {
      problems.add("'" + entry.name + "' has shape " +
                   attn::detail::shape_string(found->second.shape) + " but " +
                   attn::detail::shape_string(entry.shape) + " is expected");
    }
  }
  const auto lm_head = tensors.find("lm_head.weight");
  if (lm_head != tensors.end() && lm_head->second.shape != lm_head_shape) {
    problems.add("'lm_head.weight' has shape " + attn::detail::shape_string(lm_head->second.shape) +
                 " but " + attn::detail::shape_string(lm_head_shape) + " is expected");
  }
  bool beyond_last_block = false;
  for (const auto& [name, tensor] : tensors) {
    if (known.count(name) != 0 || name == "lm_head.weight") continue;
    const Index block = gpt2_block_of(name, prefix);
    const std::string h = prefix + "h." + std::to_string(block) + ".";
    const bool buffer = block >= 0 && block < config.n_layers &&
                        (name == h + "attn.bias" || name == h + "attn.masked_bias");
    if (buffer) continue;
    beyond_last_block = beyond_last_block || block >= config.n_layers;
    problems.add("unexpected tensor '" + name + "' " + attn::detail::shape_string(tensor.shape));
  }
  if (beyond_last_block) {
    problems.note = attn::detail::concat(
        "\n  (the file's blocks are ", gpt2_blocks(tensors, prefix), "; a GPT-2 with n_layers ",
        config.n_layers, " has ", prefix, "h.0 ... ", prefix, "h.", config.n_layers - 1, ")");
  }
  if (problems.count != 0) {
    gpt2_fail(
        source,
        attn::detail::concat(
            "does not hold the GPT-2 with vocab_size ", config.vocab_size, ", context_length ",
            config.context_length, ", emb_dim ", config.emb_dim, ", n_layers ", config.n_layers,
            " (shapes as transformers stores them, Conv1D weights (in, out)):", problems.str()));
  }
  for (const auto& entry : entries)
    check_parameter_dtype(tensors.at(entry.name).dtype, source, entry.name);
  if (lm_head != tensors.end())
    check_parameter_dtype(lm_head->second.dtype, source, "lm_head.weight");
}

}  // namespace detail

/// The book-named state of GPTModel (qkv_bias = true, as GPT-2 has) from a Hugging Face GPT-2
/// file, converted to Scalar (float or double) from F32, F64, BF16 or F16; docs/checkpoints.md
/// and this file's header give the mapping. Names may carry "transformer."; lm_head.weight, when
/// present, must be (vocab_size, emb_dim) and becomes out_head.weight, which is otherwise a copy of
/// wte.weight (GPT-2 ties the two); the h.N.attn.bias / masked_bias buffers are ignored. The
/// result holds no att.mask buffers (load_state_dict accepts their absence).
/// @param config the model's sizes, n_heads included (only checked here: it divides emb_dim).
/// @param source names the file in messages.
/// @throws Gpt2CheckpointError listing every missing, unexpected and mis-shaped tensor with its
///         shape and the expected one (unexpected ones include blocks h.N with N >= n_layers),
///         or for an invalid config; SafetensorsError for a parameter stored as an integer type.
template <typename Scalar>
StateDict<Scalar> gpt2_state_from_hf(const SafetensorsFile& file, const Gpt2Config& config,
                                     const std::string& source = "<memory>") {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "A GPT-2 state converts to float or double.");
  const std::string prefix = detail::gpt2_prefix(file.tensors, source);
  detail::check_gpt2_tensors(file.tensors, config, prefix, source);
  const auto values_of = [&](const std::string& name) {
    return detail::convert<Scalar>(file.tensors.at(name), detail::Use::parameter, source, name);
  };
  StateDict<Scalar> state;
  for (const auto& entry : detail::gpt2_entries(config, prefix)) {
    detail::add_gpt2_book_tensors(entry, values_of(entry.name), config.emb_dim, state);
  }
  state["out_head.weight"] =
      file.tensors.count("lm_head.weight") != 0
          ? NamedTensor<Scalar>{{config.vocab_size, config.emb_dim}, values_of("lm_head.weight")}
          : state.at("tok_emb.weight");
  return state;
}

/// The GPTModel configuration of a GPT-2: its sizes, qkv_bias = true (GPT-2's c_attn has a
/// bias), the given dropout rate.
inline GPTConfig gpt_model_config(const Gpt2Config& c, double drop_rate = 0) {
  GPTConfig config;
  config.vocab_size = c.vocab_size;
  config.context_length = c.context_length;
  config.emb_dim = c.emb_dim;
  config.n_heads = c.n_heads;
  config.n_layers = c.n_layers;
  config.drop_rate = drop_rate;
  config.qkv_bias = true;
  return config;
}

/// How load_gpt2_checkpoint finds what a safetensors file does not hold, and how it stores the
/// weights.
struct Gpt2LoadOptions {
  /// The number of heads; needed when there is no config.json, and must agree with its n_head
  /// when there is one.
  std::optional<Index> n_heads;
  /// transformers' config.json; empty: "config.json" in the safetensors file's folder, read
  /// when it exists.
  std::string config_path;
  /// The model's drop_rate (GPT-2 was trained with 0.1; it only acts in training mode).
  double drop_rate = 0;
  /// How the model stores tok_emb, the blocks' projections and out_head
  /// (GPTModel::set_weight_format). WeightFormat::bfloat16 rounds them as they are read: the
  /// model never holds them in Scalar (GPT-2 124M: a 390 MB process instead of 720).
  WeightFormat weight_format = WeightFormat::scalar;
};

namespace detail {

template <typename Tensors>
Gpt2Config resolve_gpt2_config(const Tensors& tensors, const std::optional<Gpt2Config>& json,
                               std::optional<Index> n_heads, const std::string& source) {
  Gpt2Config config = gpt2_config_from_shapes(tensors, source);
  if (json) {
    const std::string prefix = gpt2_prefix(tensors, source);
    const auto check = [&](const char* key, Index stated, Index found, const std::string& where) {
      if (stated != found) {
        gpt2_fail(source, attn::detail::concat("config.json has ", key, " ", stated,
                                               " but the file has ", found, " (", where, ")"));
      }
    };
    const auto shape = [&](const std::string& name) {
      return attn::detail::shape_string(tensors.at(prefix + name).shape);
    };
    check("vocab_size", json->vocab_size, config.vocab_size, "wte.weight " + shape("wte.weight"));
    check("n_embd", json->emb_dim, config.emb_dim, "wte.weight " + shape("wte.weight"));
    check("n_positions", json->context_length, config.context_length,
          "wpe.weight " + shape("wpe.weight"));
    check("n_layer", json->n_layers, config.n_layers, "blocks " + gpt2_blocks(tensors, prefix));
    if (n_heads && *n_heads != json->n_heads) {
      gpt2_fail(source, attn::detail::concat("n_heads (", *n_heads,
                                             ") disagrees with config.json's n_head (",
                                             json->n_heads, ")"));
    }
    config.n_heads = json->n_heads;
  } else if (n_heads) {
    config.n_heads = *n_heads;
  } else {
    gpt2_fail(source,
              "the number of heads is not stored in a safetensors file: put the checkpoint's "
              "config.json beside it, or pass n_heads (12 for gpt2, 16 for gpt2-medium, 20 for "
              "gpt2-large, 25 for gpt2-xl)");
  }
  return config;
}

/// The whole tensor `name` of `file`, converted to Scalar.
template <typename Scalar>
std::vector<Scalar> read_gpt2_values(SafetensorsReader& file, const std::string& name) {
  std::vector<Scalar> values(static_cast<std::size_t>(file.entry(name).numel()));
  file.read_values(name, 0, values.size(), values.data());
  return values;
}

/// Streams the (rows, cols) tensor `name` into the weight of `layer` (an Embedding or a Linear
/// of that shape) through its assign_weight, a few rows at a time: the layer keeps its
/// WeightFormat, and a bfloat16 table is never held in Scalar, nor is the file's tensor whole.
template <typename Scalar, typename Layer>
void stream_gpt2_rows(SafetensorsReader& file, const std::string& name, Layer& layer) {
  const std::uint64_t rows = file.entry(name).shape[0], cols = file.entry(name).shape[1];
  constexpr std::uint64_t chunk_rows = 256;
  std::vector<Scalar> chunk(static_cast<std::size_t>(std::min(rows, chunk_rows) * cols));
  layer.assign_weight([&](Index row, Scalar* values) {
    const auto r = static_cast<std::uint64_t>(row);
    if (r % chunk_rows == 0) {
      file.read_values(name, r * cols, std::min(chunk_rows, rows - r) * cols, chunk.data());
    }
    std::copy_n(chunk.data() + (r % chunk_rows) * cols, cols, values);
  });
}

/// Loads every tensor of a checked GPT-2 file into `model`, one piece at a time: the embedding
/// tables and the head streamed by rows, then block after block (its twelve file tensors
/// converted, loaded, and stored as `format`), then ln_f. At any moment the process holds the
/// model and one block's Scalar weights, never a second copy of the whole file.
template <typename Scalar>
void load_gpt2_weights(SafetensorsReader& file, const Gpt2Config& config, const std::string& prefix,
                       WeightFormat format, GPTModel<Scalar>& model) {
  stream_gpt2_rows<Scalar>(file, prefix + "wte.weight", model.tok_emb());
  stream_gpt2_rows<Scalar>(file, prefix + "wpe.weight", model.pos_emb());
  // GPT-2 ties its head to wte; a file from GPT2LMHeadModel may store it as lm_head.weight.
  stream_gpt2_rows<Scalar>(
      file, file.contains("lm_head.weight") ? "lm_head.weight" : prefix + "wte.weight",
      model.out_head());
  const auto load = [&](auto& layer, const std::vector<Gpt2Entry>& entries) {
    StateDict<Scalar> state;
    for (const auto& entry : entries) {
      add_gpt2_book_tensors(entry, read_gpt2_values<Scalar>(file, entry.name), config.emb_dim,
                            state);
    }
    load_state_dict(layer, state);
  };
  for (Index n = 0; n < config.n_layers; ++n) {
    auto& block = model.trf_blocks()[static_cast<std::size_t>(n)];
    load(block, gpt2_block_entries(config.emb_dim, prefix + "h." + std::to_string(n) + ".", ""));
    block.set_weight_format(format);  // loading returned the block's projections to Scalar
  }
  load(model.final_norm(), gpt2_final_norm_entries(config.emb_dim, prefix, ""));
  if (format != WeightFormat::scalar) release_buffer_pool();  // the blocks' Scalar weights
}

}  // namespace detail

/// The sizes of the GPT-2 in `file`: from its shapes, with n_heads from `json` (config.json,
/// when given) or `n_heads`; every size config.json states must equal the file's.
/// @throws Gpt2CheckpointError naming the disagreeing sizes, or when n_heads is known from
///         neither.
inline Gpt2Config resolve_gpt2_config(const SafetensorsFile& file,
                                      const std::optional<Gpt2Config>& json,
                                      std::optional<Index> n_heads, const std::string& source) {
  return detail::resolve_gpt2_config(file.tensors, json, n_heads, source);
}

/// Loads a Hugging Face GPT-2 `model.safetensors` into a GPTModel<Scalar> (float or double)
/// whose Config comes from the file's shapes and config.json (see Gpt2LoadOptions); F32, F64,
/// BF16 and F16 tensors convert into Scalar exactly (F64 into float rounded to nearest), and
/// options.weight_format says how the model stores them. The file is read tensor by tensor
/// (SafetensorsReader) straight into the model: the process never holds the whole file, nor a
/// state_dict of it, beside the model. Names, shapes and dtypes are all checked before the
/// model is built. The model is returned in eval mode, as transformers' from_pretrained returns
/// it; call train() to fine-tune.
/// @throws Gpt2CheckpointError / SafetensorsError (both std::invalid_argument) naming the file:
///         unreadable or malformed, config.json refused, sizes disagreeing, n_heads unknown or not
///         dividing n_embd, missing, unexpected or mis-shaped tensors.
template <typename Scalar = float>
GPTModel<Scalar> load_gpt2_checkpoint(const std::string& path, const Gpt2LoadOptions& options) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "A GPT-2 checkpoint loads into GPTModel<float> or GPTModel<double>.");
  std::optional<Gpt2Config> json;
  if (!options.config_path.empty()) {
    json = read_gpt2_config_json(options.config_path);
  } else {
    const std::filesystem::path beside = std::filesystem::path(path).parent_path() / "config.json";
    if (std::filesystem::exists(beside)) json = read_gpt2_config_json(beside.string());
  }
  SafetensorsReader file(path);
  const Gpt2Config config =
      detail::resolve_gpt2_config(file.tensors(), json, options.n_heads, path);
  const std::string prefix = detail::gpt2_prefix(file.tensors(), path);
  detail::check_gpt2_tensors(file.tensors(), config, prefix, path);
  // Zeros, not random weights that every tensor of the file then overwrites.
  GPTModel<Scalar> model(gpt_model_config(config, options.drop_rate), skip_init,
                         options.weight_format);
  detail::load_gpt2_weights(file, config, prefix, options.weight_format, model);
  model.eval();
  return model;
}

/// load_gpt2_checkpoint with config.json beside the file, or `n_heads` when there is none:
/// `auto gpt = attn::io::load_gpt2_checkpoint("gpt2/model.safetensors");`
template <typename Scalar = float>
GPTModel<Scalar> load_gpt2_checkpoint(const std::string& path,
                                      std::optional<Index> n_heads = std::nullopt) {
  Gpt2LoadOptions options;
  options.n_heads = n_heads;
  return load_gpt2_checkpoint<Scalar>(path, options);
}

}  // namespace attn::io

#endif  // ATTN_IO_GPT2_CHECKPOINT_HPP
