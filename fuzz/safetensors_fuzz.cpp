// Fuzzing the safetensors reader with hostile bytes: every input is either rejected with a
// SafetensorsError or parsed into tensors that convert, serialize and parse back to the same
// thing. Anything else (another exception, a crash, a sanitizer report, an allocation of a
// claimed size) is a bug. Seed corpus: tests/io/malformed and tests/fixtures.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "attn/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<unsigned char> bytes(data, data + size);
  attn::io::SafetensorsFile file;
  try {
    file = attn::io::parse_safetensors(bytes);
  } catch (const attn::io::SafetensorsError&) {
    return 0;  // rejected, as it should be when malformed
  }
  // Accepted: it must convert (or be refused for a value that would change) and round-trip
  // exactly.
  try {
    (void)attn::io::to_state_dict<float>(file);
  } catch (const attn::io::SafetensorsError&) {
  }
  try {
    (void)attn::io::to_state_dict<double>(file);
  } catch (const attn::io::SafetensorsError&) {
  }
  for (const auto& [name, tensor] : file.tensors) {
    // Every dtype into attn::Index, and every tensor checked as a causal mask of its own size.
    try {
      (void)attn::io::detail::convert<attn::Index>(tensor, attn::io::detail::Use::data, "<fuzz>",
                                                   name);
    } catch (const attn::io::SafetensorsError&) {
    }
    try {
      const attn::Index n = tensor.shape.empty() ? 0 : tensor.shape[0];
      attn::io::detail::check_causal_mask(tensor, {n, n}, "<fuzz>", name);
    } catch (const attn::io::SafetensorsError&) {
    }
  }
  const auto again = attn::io::parse_safetensors(attn::io::serialize_safetensors(file));
  if (again.metadata != file.metadata || again.tensors.size() != file.tensors.size()) std::abort();
  for (const auto& [name, tensor] : file.tensors) {
    const auto& other = again.tensors.at(name);
    if (other.dtype != tensor.dtype || other.shape != tensor.shape || other.bytes != tensor.bytes) {
      std::abort();
    }
  }
  return 0;
}
