// attn/models/attention_language_model.hpp: the smallest model that learns with attention:
// token embedding + positional embedding -> MultiHeadAttention -> linear head over the
// vocabulary. It is what the training example trains on next-character prediction, and the
// pattern to follow when composing attn layers into a model of your own: forward with a cache,
// backward in reverse order, visit_state that prefixes each part's names.
#ifndef ATTN_MODELS_ATTENTION_LANGUAGE_MODEL_HPP
#define ATTN_MODELS_ATTENTION_LANGUAGE_MODEL_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/layers/embedding.hpp"
#include "attn/layers/linear.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// logits = out_head(att(tok_emb(ids) + pos_emb(0..T-1))), with PyTorch-style names
/// "tok_emb.weight", "pos_emb.weight", "att.*" (MultiHeadAttention's) and "out_head.*", so a
/// state_dict saved from the equivalent nn.Module loads as is.
template <typename ScalarType>
class AttentionLanguageModel : public StateVisitable<AttentionLanguageModel<ScalarType>> {
 public:
  using Scalar = ScalarType;

  struct Config {
    Index vocab_size;
    Index context_length;
    Index d_model;
    Index num_heads;
    Scalar dropout = 0;
  };

  /// Draws every parameter from `generator` in the nn.Module's order (tok_emb, pos_emb, att,
  /// out_head).
  /// @throws std::invalid_argument for a non-positive size, d_model not divisible by num_heads,
  ///         or a dropout outside [0, 1).
  explicit AttentionLanguageModel(const Config& config, GeneratorRef generator = Generator())
      : config_(config),
        tok_emb_(config.vocab_size, config.d_model, generator),
        pos_emb_(config.context_length, config.d_model, generator),
        att_(config.d_model, config.d_model, config.context_length, config.dropout,
             config.num_heads, false, generator),
        out_head_(config.d_model, config.vocab_size, true, generator) {}

  const Config& config() const { return config_; }
  MultiHeadAttention<Scalar>& attention() { return att_; }

  void train(bool training = true) { att_.train(training); }
  void eval() { train(false); }
  bool is_training() const { return att_.is_training(); }

  /// What forward keeps for backward: the ids, the embedded input, the attention's own cache,
  /// and the attention output the head read.
  struct Cache {
    Tensor<Index, 2> ids;
    Tensor<Scalar, 3> embedded;
    typename MultiHeadAttention<Scalar>::Cache attention;
    Tensor<Scalar, 3> attended;
  };

  /// @param ids (B, T) token ids in [0, vocab_size), T <= context_length.
  /// @return logits (B, T, vocab_size).
  /// @throws ShapeError if T exceeds context_length; IndexError naming an id out of range.
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids) const {
    return out_head_.forward(att_.forward(embed(ids).view()).view());
  }

  /// Forward that fills `cache` for backward. Same result as forward(ids).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids, Cache& cache) const {
    cache.ids = Tensor<Index, 2>(ids);
    cache.embedded = embed(ids);
    cache.attended = att_.forward(cache.embedded.view(), cache.attention);
    return out_head_.forward(cache.attended.view());
  }

  /// Backward of forward(ids, cache): accumulates (+=) the gradient of every parameter.
  /// @param grad_logits (B, T, vocab_size), dL/dlogits.
  void backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_logits) {
    const Tensor<Scalar, 3> grad_attended = out_head_.backward(cache.attended.view(), grad_logits);
    const Tensor<Scalar, 3> grad_embedded = att_.backward(cache.attention, grad_attended.view());
    tok_emb_.backward(cache.ids.view(), grad_embedded.view());
    pos_emb_.add_positions_backward(grad_embedded.view());
  }

 private:
  friend class StateVisitable<AttentionLanguageModel<ScalarType>>;
  // Entries "tok_emb.weight", "pos_emb.weight", "att.*" and "out_head.*", with gradients.
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    self.tok_emb_.visit_state(visit, prefix + "tok_emb.");
    self.pos_emb_.visit_state(visit, prefix + "pos_emb.");
    self.att_.visit_state(visit, prefix + "att.");
    self.out_head_.visit_state(visit, prefix + "out_head.");
  }

  Tensor<Scalar, 3> embed(const TensorView<const Index, 2>& ids) const {
    if (ids.size(1) > config_.context_length) {
      throw ShapeError(detail::concat("AttentionLanguageModel: ids have ", ids.size(1),
                                      " tokens but context_length is ", config_.context_length));
    }
    Tensor<Scalar, 3> x = tok_emb_.forward(ids);
    pos_emb_.add_positions(x.view());
    return x;
  }

  Config config_;
  Embedding<Scalar> tok_emb_;
  Embedding<Scalar> pos_emb_;
  MultiHeadAttention<Scalar> att_;
  Linear<Scalar> out_head_;
};

}  // namespace attn

#endif  // ATTN_MODELS_ATTENTION_LANGUAGE_MODEL_HPP
