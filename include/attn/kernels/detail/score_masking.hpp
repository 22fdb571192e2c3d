// attn/kernels/detail/score_masking.hpp: stage 2 of both attention paths in one place: what
// turns the scaled scores of one (batch, head) into masked logits. An optional additive float
// mask (PyTorch's float `attn_mask`, broadcast over batch and heads) is added first, then the
// boolean Mask (causal, band, explicit, and the sequence's key padding) sets -inf. The reference
// path applies it to whole (T, S) score matrices, the fused path to transposed tiles; both get
// the same per-head view from here, so the two paths cannot disagree on what is masked.
#ifndef ATTN_KERNELS_DETAIL_SCORE_MASKING_HPP
#define ATTN_KERNELS_DETAIL_SCORE_MASKING_HPP

#include <type_traits>

#include "attn/config.hpp"
#include "attn/kernels/detail/leading_dims.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/tensor/eigen_interop.hpp"

namespace attn::detail {

/// The masking of one leading position (batch, head): its resolved Mask and, if any, its (T, S)
/// matrix of the additive mask.
template <typename Scalar>
struct HeadMasking {
  Mask mask;
  TensorView<const Scalar, 2> additive;  // empty: nothing is added

  bool has_additive() const { return additive.data() != nullptr; }

  /// scores (rows, cols) at (query row0, key col0): += additive, then masked entries -inf.
  template <typename Derived>
  void apply(Eigen::MatrixBase<Derived>& scores, Index row0 = 0, Index col0 = 0) const {
    if (has_additive()) {
      scores += as_matrix(additive).block(row0, col0, scores.rows(), scores.cols());
    }
    mask.apply(scores, row0, col0);
  }

  /// The same for a tile held transposed, keys by queries (the fused path's layout). Tiles the
  /// mask leaves whole are not visited by the mask.
  template <typename Derived>
  void apply_transposed(Eigen::MatrixBase<Derived>& scores_t, Index row0, Index col0) const {
    const Index rows = scores_t.cols(), cols = scores_t.rows();
    if (has_additive()) {
      scores_t += as_matrix(additive).block(row0, col0, rows, cols).transpose();
    }
    if (!mask.tile_is_unmasked(row0, rows, col0, cols)) mask.apply_transposed(scores_t, row0, col0);
  }
};

/// The masking of every leading position of a rank-4 kernel view with `count` positions, the
/// last leading dim holding `inner` of them (the heads).
template <typename Scalar>
class ScoreMasking {
 public:
  ScoreMasking(const Mask& mask, const TensorView<const Scalar, 4>& additive, Index count,
               Index inner)
      : mask_(mask), additive_(additive), count_(count), inner_(inner) {}

  HeadMasking<Scalar> at(Index flat) const {
    HeadMasking<Scalar> head{mask_.for_leading(flat, count_), {}};
    if (additive_.data() != nullptr) head.additive = broadcast_matrix(additive_, flat, inner_);
    return head;
  }

 private:
  Mask mask_;
  TensorView<const Scalar, 4> additive_;
  Index count_, inner_;
};

/// The masking of a kernel-rank view of q (rank 4 or more; its last leading dim the heads).
template <typename Scalar, int Rank>
ScoreMasking<std::remove_const_t<Scalar>> score_masking(
    const TensorView<Scalar, Rank>& q, const Mask& mask,
    const TensorView<const std::remove_const_t<Scalar>, 4>& additive) {
  return ScoreMasking<std::remove_const_t<Scalar>>(mask, additive, leading_count<Rank>(q.shape()),
                                                   heads_of<Rank>(q.shape()));
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_SCORE_MASKING_HPP
