// attn/text/detail/byte_pair_encoding.hpp: the byte-level BPE merge loop behind Gpt2Tokenizer,
// and the table it looks ranks up in.
//
// A vocabulary maps byte strings to ranks; a token's rank is its id. Encoding one pre-tokenized
// piece starts from its single bytes and repeatedly merges the adjacent pair whose concatenation
// has the lowest rank (the leftmost such pair on a tie) until no adjacent concatenation is in the
// vocabulary, as tiktoken's byte_pair_merge does (Sennrich et al. 2016 learn the merges; GPT-2,
// Radford et al. 2019, applies them to bytes). A piece that is itself a token is that token.
// Short pieces use tiktoken's quadratic scan over a small array; long ones (a run of letters
// can be megabytes long) a heap of candidate pairs, O(n log n), with the same result.
#ifndef ATTN_TEXT_DETAIL_BYTE_PAIR_ENCODING_HPP
#define ATTN_TEXT_DETAIL_BYTE_PAIR_ENCODING_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attn/config.hpp"

namespace attn::text::detail {

/// The rank of "no such token".
inline constexpr std::uint32_t no_rank = std::numeric_limits<std::uint32_t>::max();

/// A 64-bit hash of a byte string, eight bytes at a time (a multiply-xorshift mix; the table is
/// built once and never exposed, so it only has to spread GPT-2's tokens well).
inline std::uint64_t hash_bytes(const unsigned char* bytes, std::size_t size) {
  constexpr std::uint64_t multiplier = 0xFF51AFD7ED558CCDULL;
  std::uint64_t h =
      0x9E3779B97F4A7C15ULL ^ (static_cast<std::uint64_t>(size) * 0xC2B2AE3D27D4EB4FULL);
  while (size >= 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes, 8);
    h = (h ^ word) * multiplier;
    h ^= h >> 32;
    bytes += 8;
    size -= 8;
  }
  if (size > 0) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes, size);
    h = (h ^ word) * multiplier;
  }
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

/// Token bytes by id, and an open-addressing hash table from bytes to id. Immutable once built,
/// so any number of threads may look up at once.
class TokenTable {
 public:
  /// Appends the token `bytes` with the next id, `size()`. `hashed` tokens can be looked up by
  /// their bytes (the mergeable ones); special tokens are only decoded.
  void add(std::string_view bytes, bool hashed) {
    bytes_.append(bytes.data(), bytes.size());
    offsets_.push_back(static_cast<std::uint32_t>(bytes_.size()));
    hashed_.push_back(hashed);
  }

  /// Builds the lookup table; call once, after the last add().
  void finish() {
    std::size_t slots = 16;
    while (slots < 2 * size()) slots *= 2;
    slots_.assign(slots, no_rank);
    mask_ = slots - 1;
    for (std::size_t id = 0; id < size(); ++id) {
      if (!hashed_[id]) continue;
      const std::string_view token = bytes(id);
      std::size_t slot = slot_of(token);
      while (slots_[slot] != no_rank) slot = (slot + 1) & mask_;
      slots_[slot] = static_cast<std::uint32_t>(id);
    }
    for (std::size_t b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      byte_rank_[b] = find(std::string_view(&c, 1));
    }
  }

  std::size_t size() const { return offsets_.size() - 1; }

  std::string_view bytes(std::size_t id) const {
    return {bytes_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]};
  }

  /// The id of the hashed token with exactly these bytes, or no_rank.
  std::uint32_t find(std::string_view token) const {
    std::size_t slot = slot_of(token);
    while (true) {
      const std::uint32_t id = slots_[slot];
      if (id == no_rank) return no_rank;
      const std::uint32_t begin = offsets_[id];
      const std::uint32_t end = offsets_[id + 1];
      if (end - begin == token.size() &&
          std::memcmp(bytes_.data() + begin, token.data(), token.size()) == 0) {
        return id;
      }
      slot = (slot + 1) & mask_;
    }
  }

  /// The id of the single byte `b` (no_rank if the vocabulary lacks it).
  std::uint32_t byte_rank(unsigned char b) const { return byte_rank_[b]; }

 private:
  std::size_t slot_of(std::string_view token) const {
    return static_cast<std::size_t>(
               hash_bytes(reinterpret_cast<const unsigned char*>(token.data()), token.size())) &
           mask_;
  }

  std::string bytes_;
  std::vector<std::uint32_t> offsets_{0};
  std::vector<bool> hashed_;
  std::vector<std::uint32_t> slots_;
  std::size_t mask_ = 0;
  std::array<std::uint32_t, 256> byte_rank_{};
};

/// Working memory of one encode call, reused from piece to piece.
struct BpeScratch {
  std::vector<std::uint32_t> starts;  // byte offset where each part begins
  std::vector<std::uint32_t> ranks;   // rank of part i merged with part i + 1
  std::vector<std::uint32_t> next;    // heap path: the part after each part (by start offset)
  std::vector<std::uint32_t> prev;
  std::vector<std::uint32_t> pair_rank;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> heap;  // (rank, start), min at front
};

/// Pieces up to this many bytes take the quadratic scan; longer ones the heap.
inline constexpr std::size_t quadratic_piece_limit = 128;

// tiktoken's loop: parts[i] starts at starts[i]; ranks[i] is the rank of parts i and i + 1
// merged. Each step merges the leftmost lowest-ranked pair.
inline void merge_short_piece(const TokenTable& table, std::string_view piece, BpeScratch& s,
                              std::vector<Index>& out) {
  const std::size_t n = piece.size();
  auto rank_of = [&](std::size_t begin, std::size_t end) {
    return table.find(piece.substr(begin, end - begin));
  };
  s.starts.resize(n + 1);
  s.ranks.resize(n + 1);
  for (std::size_t i = 0; i <= n; ++i) s.starts[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = 0; i + 1 < n; ++i) s.ranks[i] = rank_of(i, i + 2);
  s.ranks[n - 1] = no_rank;
  s.ranks[n] = no_rank;
  std::size_t parts = n + 1;  // entries in starts/ranks; the last is the end sentinel
  // The rank of parts i and i + 1 merged, were part i + 1 merged into part i + 2 already:
  // spanning starts[i] .. starts[i + 3].
  auto rank_after_merge = [&](std::size_t i) {
    return i + 3 < parts ? rank_of(s.starts[i], s.starts[i + 3]) : no_rank;
  };
  while (true) {
    std::uint32_t best = no_rank;
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < parts; ++i) {
      if (s.ranks[i] < best) {
        best = s.ranks[i];
        at = i;
      }
    }
    if (best == no_rank) break;
    if (at > 0) s.ranks[at - 1] = rank_after_merge(at - 1);
    s.ranks[at] = rank_after_merge(at);
    s.starts.erase(s.starts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    s.ranks.erase(s.ranks.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    --parts;
  }
  for (std::size_t i = 0; i + 1 < parts; ++i) {
    const std::uint32_t id = rank_of(s.starts[i], s.starts[i + 1]);
    ATTN_ASSERT(id != no_rank);
    out.push_back(static_cast<Index>(id));
  }
}

// The same merges with a heap: parts form a doubly linked list by start offset; every live
// pair's rank is in pair_rank[start] and in the heap (stale heap entries are skipped). The heap
// orders by (rank, start), so it takes the leftmost lowest-ranked pair as the scan does.
inline void merge_long_piece(const TokenTable& table, std::string_view piece, BpeScratch& s,
                             std::vector<Index>& out) {
  const auto n = static_cast<std::uint32_t>(piece.size());
  auto rank_of = [&](std::uint32_t begin, std::uint32_t end) {
    return table.find(piece.substr(begin, end - begin));
  };
  s.next.resize(n);
  s.prev.resize(n);
  s.pair_rank.assign(n, no_rank);
  s.heap.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    s.next[i] = i + 1;
    s.prev[i] = i == 0 ? no_rank : i - 1;
  }
  const std::greater<> later;
  auto push = [&](std::uint32_t start) {
    const std::uint32_t after = s.next[start];
    s.pair_rank[start] = after < n ? rank_of(start, s.next[after]) : no_rank;
    if (s.pair_rank[start] != no_rank) {
      s.heap.emplace_back(s.pair_rank[start], start);
      std::push_heap(s.heap.begin(), s.heap.end(), later);
    }
  };
  for (std::uint32_t i = 0; i + 1 < n; ++i) {
    s.pair_rank[i] = rank_of(i, i + 2);
    if (s.pair_rank[i] != no_rank) s.heap.emplace_back(s.pair_rank[i], i);
  }
  std::make_heap(s.heap.begin(), s.heap.end(), later);
  while (!s.heap.empty()) {
    const auto [rank, start] = s.heap.front();
    std::pop_heap(s.heap.begin(), s.heap.end(), later);
    s.heap.pop_back();
    if (s.pair_rank[start] != rank) continue;  // stale: the pair changed since it was pushed
    // Merge the part after `start` into it. A pair's span only grows, so a rank seen again at
    // the same start is always the current one.
    const std::uint32_t gone = s.next[start];
    s.next[start] = s.next[gone];
    if (s.next[gone] < n) s.prev[s.next[gone]] = start;
    s.pair_rank[gone] = no_rank;
    push(start);
    if (s.prev[start] != no_rank) push(s.prev[start]);
  }
  for (std::uint32_t i = 0; i < n; i = s.next[i]) {
    const std::uint32_t id = rank_of(i, s.next[i]);
    ATTN_ASSERT(id != no_rank);
    out.push_back(static_cast<Index>(id));
  }
}

/// Appends the tokens of one pre-tokenized piece to `out`. Every byte must be a token.
inline void encode_piece(const TokenTable& table, std::string_view piece, BpeScratch& scratch,
                         std::vector<Index>& out) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(static_cast<Index>(table.byte_rank(static_cast<unsigned char>(piece[0]))));
    return;
  }
  const std::uint32_t whole = table.find(piece);
  if (whole != no_rank) {
    out.push_back(static_cast<Index>(whole));
  } else if (piece.size() <= quadratic_piece_limit) {
    merge_short_piece(table, piece, scratch, out);
  } else {
    merge_long_piece(table, piece, scratch, out);
  }
}

}  // namespace attn::text::detail

#endif  // ATTN_TEXT_DETAIL_BYTE_PAIR_ENCODING_HPP
