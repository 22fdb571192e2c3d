// attn/layers/multi_head_attention_combined_qkv.hpp: MultiHeadAttentionCombinedQKV (the book's
// bonus notebook on efficient multi-head attention): the same maths as MultiHeadAttention with
// one (3 * d_out, d_in) projection named `qkv` and an output projection named `proj`.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/layers/detail/multi_head_engine.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"

namespace attn {

/// Causal multi-head attention with a fused QKV projection. The (B, T, 3 * d_out) projection
/// holds queries, keys and values side by side, as the notebook's
/// `qkv.view(b, T, 3, H, D).permute(2, 0, 3, 1, 4)` reads them; here each is a column slice
/// split into heads, all views into the one buffer. Everything but the names and the
/// initialisation order comes from the engine it shares with MultiHeadAttention.
template <typename ScalarType>
class MultiHeadAttentionCombinedQKV
    : public detail::MultiHeadEngine<ScalarType>,
      public StateVisitable<MultiHeadAttentionCombinedQKV<ScalarType>> {
  using Engine = detail::MultiHeadEngine<ScalarType>;

 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument as MultiHeadAttention.
  MultiHeadAttentionCombinedQKV(Index d_in, Index d_out, Index context_length, Scalar dropout,
                                Index num_heads, bool qkv_bias = false,
                                GeneratorRef generator = Generator())
      : Engine("MultiHeadAttentionCombinedQKV", d_in, d_out, context_length, dropout, num_heads,
               qkv_bias) {
    if (generator.skips_init()) return;
    this->qkv().reset_parameters(generator.get());
    this->out().reset_parameters(generator.get());
  }

  Linear<Scalar>& qkv() { return Engine::qkv(); }
  Linear<Scalar>& proj() { return this->out(); }

 private:
  friend class StateVisitable<MultiHeadAttentionCombinedQKV<ScalarType>>;
  // Entries "qkv.weight" (3 * d_out, d_in), "qkv.bias" with qkv_bias, "proj.weight",
  // "proj.bias", and the buffer "mask".
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    Engine::visit_stacked_qkv(self, visit, prefix + "qkv.");
    Engine::visit_out_and_mask(self, visit, prefix, "proj.");
  }
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP
