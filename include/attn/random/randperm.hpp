// attn/random/randperm.hpp: randperm, a random permutation of 0..n-1 drawn as torch.randperm
// draws it on the CPU (PyTorch 1.13), so a Generator seeded like a torch.Generator shuffles the
// same way: what DataLoader(shuffle=True) needs to visit windows in PyTorch's order.
#ifndef ATTN_RANDOM_RANDPERM_HPP
#define ATTN_RANDOM_RANDPERM_HPP

#include <cstdint>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/random/generator.hpp"

namespace attn {

/// torch.randperm(n, generator=g) of PyTorch 1.13's CPU generator: start from 0, 1, ..., n-1 and
/// for i = 0 .. n-2 swap entry i with entry i + (draw % (n - i)), one 32-bit draw each (n - 1
/// draws in all; n = 0 and n = 1 draw nothing). Checked against python3-torch 1.13 for n up to
/// 214748364 (= (2^32 - 1) / 20, where later PyTorch releases may draw differently). The modulo
/// of a 32-bit draw is PyTorch's: reproducing it is the point, though it is slightly biased for
/// large n (and for n > 2^32 cannot reach every permutation).
/// @throws std::invalid_argument if n is negative.
inline std::vector<Index> randperm(Index n, Generator& generator) {
  if (n < 0) throw std::invalid_argument(detail::concat("randperm: n (", n, ") is negative"));
  std::vector<Index> permutation(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < permutation.size(); ++i) permutation[i] = static_cast<Index>(i);
  for (Index i = 0; i + 1 < n; ++i) {
    const auto z = static_cast<Index>(generator.next_u32() % static_cast<std::uint64_t>(n - i));
    std::swap(permutation[static_cast<std::size_t>(i)],
              permutation[static_cast<std::size_t>(i + z)]);
  }
  return permutation;
}

}  // namespace attn

#endif  // ATTN_RANDOM_RANDPERM_HPP
