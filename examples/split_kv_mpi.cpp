// Split-KV attention across processes with MPI: each rank holds a contiguous slice of a long
// sequence's keys and values, computes its partial attention (out and per-row log-sum-exp) with
// attn::attention_partial, and rank 0 merges the partials exactly with
// attn::merge_attention_partials (attn/kernels/merge_attention.hpp), then checks the result
// against one pass of the shared kernel over every key. attn does the attention and the merge;
// moving the partials between processes is MPI's (or torch.distributed's) job.
//
// The problem: B 1, H 4 heads, S 4096 keys, the last T 16 queries of the sequence (causal, as
// when a model decodes or prefills a suffix), D = Dv = 64, float. Every rank draws the same full
// q, k and v from one seeded attn::Generator, so no input is sent; a real deployment would hold
// only its own slice.
//
// Combining: MPI_Gather of each rank's packed partial (its out, then its lse: (T * Dv + T) floats
// per head) into rank 0, which merges all of them at once. For a few queries the partials are
// tiny (4 * 16 * 65 floats per rank here), so one collective is cheapest. A ring (each rank
// receives the running (out, lse), merges its own partial into it in place and passes it on,
// P - 1 steps) spreads the merges when the partials are large or every rank needs the result;
// an MPI_Reduce with a user-defined MPI_Op calling merge_attention_partials would do the same
// in a tree, since the merge is associative and commutative up to rounding.
//
//   mpirun -np 4 attn_split_kv_mpi
#include <mpi.h>

#include <algorithm>
#include <attn/attn.hpp>
#include <cmath>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  const attn::Index B = 1, H = 4, S = 4096, T = 16, D = 64, Dv = 64;
  attn::Generator generator(2024);
  const auto random = [&](const attn::Shape<4>& shape) {
    attn::Tensor<float, 4> tensor(shape);
    for (attn::Index i = 0; i < tensor.numel(); ++i)
      tensor.data()[i] = generator.uniform<float>(-1.0f, 1.0f);
    return tensor;
  };
  const auto q = random({B, H, T, D});
  const auto k = random({B, H, S, D});
  const auto v = random({B, H, S, Dv});
  // The queries are the sequence's last T tokens: query i is token S - T + i and sees keys
  // j <= i + (S - T).
  const attn::Index offset = S - T;

  // 1. This rank's contiguous slice of the keys, [s0, s1), and its partial. The causal mask is
  //    shifted by s0: the slice's key j is the sequence's key s0 + j.
  const attn::Index s0 = S * rank / ranks, s1 = S * (rank + 1) / ranks;
  const attn::Index rows = B * H * T, block = rows * Dv + rows;  // out, then lse
  std::vector<float> packed(static_cast<std::size_t>(block));
  const attn::TensorView<float, 4> out(packed.data(), {B, H, T, Dv});
  const attn::TensorView<float, 3> lse(packed.data() + rows * Dv, {B, H, T});
  attn::AttentionOptions<float> options;
  options.mask = attn::Mask::causal(offset - s0);
  attn::attention_partial<float, 4>(q.view(), attn::slice(k.view(), 2, s0, s1),
                                    attn::slice(v.view(), 2, s0, s1), out, lse, options);

  // 2. Every partial to rank 0.
  std::vector<float> gathered(rank == 0 ? static_cast<std::size_t>(block * ranks) : 0);
  MPI_Gather(packed.data(), static_cast<int>(block), MPI_FLOAT, gathered.data(),
             static_cast<int>(block), MPI_FLOAT, 0, MPI_COMM_WORLD);

  int status = 0;
  if (rank == 0) {
    // 3. The exact merge of the P partials, read in place from the gathered buffer.
    std::vector<attn::AttentionPartial<float, 4>> partials;
    for (int r = 0; r < ranks; ++r) {
      const float* base = gathered.data() + static_cast<std::size_t>(block) * r;
      partials.push_back({attn::TensorView<const float, 4>(base, {B, H, T, Dv}),
                          attn::TensorView<const float, 3>(base + rows * Dv, {B, H, T})});
    }
    attn::Tensor<float, 4> merged({B, H, T, Dv});
    attn::merge_attention_partials<float, 4>(partials, merged.view());

    // 4. The same attention in one process, over every key.
    attn::Tensor<float, 4> single({B, H, T, Dv});
    options.mask = attn::Mask::causal(offset);
    attn::scaled_dot_product_attention<float, 4>(q.view(), k.view(), v.view(), single.view(),
                                                 options);
    double max_abs = 0;
    for (attn::Index i = 0; i < merged.numel(); ++i) {
      max_abs = std::max(max_abs, std::abs(double(merged.data()[i]) - double(single.data()[i])));
    }
    std::printf("%d ranks hold the %ld keys in slices of %ld to %ld; %ld queries, %ld heads\n",
                ranks, static_cast<long>(S), static_cast<long>(S / ranks),
                static_cast<long>((S + ranks - 1) / ranks), static_cast<long>(T),
                static_cast<long>(H));
    const bool match = max_abs <= 1e-6;
    std::printf("max abs difference, merged partials vs one pass: %.3g: %s\n", max_abs,
                match ? "match" : "MISMATCH");
    status = match ? 0 : 1;
  }
  MPI_Finalize();
  return status;
}
