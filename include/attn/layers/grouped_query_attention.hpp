// attn/layers/grouped_query_attention.hpp: GroupedQueryAttention (the book's bonus notebook
// ch04/04_gqa): causal multi-head attention whose keys and values have only num_kv_groups
// heads, each shared by num_heads / num_kv_groups query heads, so a KV cache holds that many
// times fewer positions' worth of memory. num_kv_groups = 1 is multi-query attention,
// num_kv_groups = num_heads is MultiHeadAttention.
#ifndef ATTN_LAYERS_GROUPED_QUERY_ATTENTION_HPP
#define ATTN_LAYERS_GROUPED_QUERY_ATTENTION_HPP

#include <limits>
#include <stdexcept>
#include <string>

#include "attn/config.hpp"
#include "attn/layers/detail/multi_head_engine.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Grouped-query attention with the book's names and shapes: W_query (d_out, d_in), W_key and
/// W_value (num_kv_groups * head_dim, d_in), out_proj (d_out, d_out) without a bias, initialised
/// in that order like nn.Linear's, so Generator(s) gives the weights of torch.manual_seed(s).
/// Query head h reads kv group h / (num_heads / num_kv_groups): the book's repeat_interleave of
/// keys and values, done by the kernel's indexing instead of copies. Like MultiHeadAttention the
/// three projections are one stacked (d_out + 2 kv_dim, d_in) matrix and forward(x),
/// forward(x, cache) for training, forward(x, kv_cache) for inference, backward, set_window and
/// set_rope come from the engine they share. The book's class has no context_length: the causal
/// mask is never materialised, and there is no `mask` buffer in the state_dict.
template <typename ScalarType>
class GroupedQueryAttention : public detail::MultiHeadEngine<ScalarType>,
                              public StateVisitable<GroupedQueryAttention<ScalarType>> {
  using Engine = detail::MultiHeadEngine<ScalarType>;

 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument for a non-positive size, num_heads or num_kv_groups, d_out
  ///         not divisible by num_heads, num_heads not divisible by num_kv_groups, or a dropout
  ///         outside [0, 1).
  GroupedQueryAttention(Index d_in, Index d_out, Scalar dropout, Index num_heads,
                        Index num_kv_groups, bool qkv_bias = false,
                        GeneratorRef generator = Generator())
      : Engine("GroupedQueryAttention", d_in, d_out, std::numeric_limits<Index>::max(), dropout,
               num_heads, qkv_bias, checked_groups(num_heads, num_kv_groups), false) {
    if (!generator.skips_init()) this->reset_split_parameters(generator.get());
  }

  Index num_kv_groups() const { return this->kv_heads(); }
  /// Query heads per kv group.
  Index group_size() const { return this->num_heads() / this->kv_heads(); }

  TensorView<Scalar, 2> W_query_weight() { return this->weight_part(0); }
  TensorView<Scalar, 2> W_key_weight() { return this->weight_part(1); }
  TensorView<Scalar, 2> W_value_weight() { return this->weight_part(2); }
  TensorView<Scalar, 1> W_query_bias() { return this->bias_part(0); }
  TensorView<Scalar, 1> W_key_bias() { return this->bias_part(1); }
  TensorView<Scalar, 1> W_value_bias() { return this->bias_part(2); }
  Linear<Scalar>& out_proj() { return this->out(); }

 private:
  friend class StateVisitable<GroupedQueryAttention<ScalarType>>;

  static Index checked_groups(Index num_heads, Index num_kv_groups) {
    constexpr const char* who = "GroupedQueryAttention";
    detail::require_positive(who, "num_heads", num_heads);
    detail::require_positive(who, "num_kv_groups", num_kv_groups);
    if (num_heads % num_kv_groups != 0) {
      throw std::invalid_argument(detail::concat(who, ": num_heads (", num_heads,
                                                 ") must be divisible by num_kv_groups (",
                                                 num_kv_groups, ")"));
    }
    return num_kv_groups;
  }

  // Entries "W_query.weight" (d_out, d_in), "W_key.weight" and "W_value.weight"
  // (num_kv_groups * head_dim, d_in), their biases with qkv_bias, "out_proj.weight".
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    Engine::visit_split_qkv(self, visit, prefix, {"W_query.", "W_key.", "W_value."});
    Engine::visit_out(self, visit, prefix, "out_proj.");
  }
};

}  // namespace attn

#endif  // ATTN_LAYERS_GROUPED_QUERY_ATTENTION_HPP
