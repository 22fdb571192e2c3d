// attn/layers/multi_head_attention.hpp: MultiHeadAttention (book section 3.6.2): one set of
// d_out-wide projections split into num_heads heads of head_dim = d_out / num_heads, then an
// output projection.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/layers/detail/multi_head_engine.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Causal multi-head attention with weight splits, with the book's parameter names
/// (W_query, W_key, W_value, out_proj) and initialisation order, so `Generator(123)` gives the
/// weights of `torch.manual_seed(123); MultiHeadAttention(...)`.
///
/// The three projections are stored stacked in one (3 * d_out, d_in) matrix, so the forward pass
/// projects queries, keys and values in one GEMM; W_query.weight and friends are row blocks of it.
/// The book's `.view(b, T, H, D).transpose(1, 2)` and the transpose back before out_proj are
/// strided views (split_heads): no copies. forward(x) takes (B, T, d_in), T <= context_length,
/// and returns (B, T, d_out); forward(x, cache), backward, the sizes, train()/eval(),
/// dropout_generator() and set_attention_path() come from the engine it shares with
/// MultiHeadAttentionCombinedQKV.
template <typename ScalarType>
class MultiHeadAttention : public detail::MultiHeadEngine<ScalarType>,
                           public StateVisitable<MultiHeadAttention<ScalarType>> {
  using Engine = detail::MultiHeadEngine<ScalarType>;

 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument for a non-positive size or num_heads, d_out not divisible
  ///         by num_heads, or a dropout outside [0, 1).
  MultiHeadAttention(Index d_in, Index d_out, Index context_length, Scalar dropout, Index num_heads,
                     bool qkv_bias = false, GeneratorRef generator = Generator())
      : Engine("MultiHeadAttention", d_in, d_out, context_length, dropout, num_heads, qkv_bias) {
    if (!generator.skips_init()) this->reset_split_parameters(generator.get());
  }

  /// The (d_out, d_in) projection weights and (d_out) biases (empty without qkv_bias), as views
  /// into the stacked storage.
  TensorView<Scalar, 2> W_query_weight() { return this->weight_part(0); }
  TensorView<Scalar, 2> W_key_weight() { return this->weight_part(1); }
  TensorView<Scalar, 2> W_value_weight() { return this->weight_part(2); }
  TensorView<Scalar, 1> W_query_bias() { return this->bias_part(0); }
  TensorView<Scalar, 1> W_key_bias() { return this->bias_part(1); }
  TensorView<Scalar, 1> W_value_bias() { return this->bias_part(2); }
  Linear<Scalar>& out_proj() { return this->out(); }

 private:
  friend class StateVisitable<MultiHeadAttention<ScalarType>>;
  // Entries "W_query.weight", "W_key.weight", "W_value.weight" (d_out, d_in) and their biases
  // with qkv_bias, "out_proj.weight" (d_out, d_out), "out_proj.bias", and the buffer "mask".
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    Engine::visit_split_qkv(self, visit, prefix, {"W_query.", "W_key.", "W_value."});
    Engine::visit_out_and_mask(self, visit, prefix, "out_proj.");
  }
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP
