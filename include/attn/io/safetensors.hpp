// attn/io/safetensors.hpp: reading and writing the safetensors format, so weights move between
// PyTorch and attn unchanged.
//
// A file is: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name
// to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data section),
// an optional "__metadata__" string map, then the raw little-endian data. attn reads F32 and
// F64 tensors; everything about a file is validated before any tensor is used.
#ifndef ATTN_IO_SAFETENSORS_HPP
#define ATTN_IO_SAFETENSORS_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/state/state_dict.hpp"

namespace attn::io {

/// A safetensors file was malformed or did not hold what was asked for. The message names the
/// file (or "<memory>"), the tensor and the offending values.
class SafetensorsError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class Dtype { F32, F64 };

inline const char* dtype_name(Dtype dtype) {
  return dtype == Dtype::F32 ? "F32" : "F64";
}
inline Index dtype_size(Dtype dtype) {
  return dtype == Dtype::F32 ? 4 : 8;
}

template <typename Scalar>
constexpr Dtype dtype_of() {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "safetensors in attn holds float (F32) or double (F64) tensors.");
  return std::is_same_v<Scalar, float> ? Dtype::F32 : Dtype::F64;
}

/// One tensor of a file: dtype, shape, and its little-endian bytes.
struct SafetensorsTensor {
  Dtype dtype = Dtype::F32;
  std::vector<Index> shape;
  std::vector<unsigned char> bytes;
};

/// A whole file: tensors by name and the free-form "__metadata__" strings.
struct SafetensorsFile {
  std::map<std::string, SafetensorsTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// The largest JSON header attn accepts: 100 MB, the limit of the reference implementation.
/// A header length beyond it is rejected before anything is allocated.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

namespace detail {

static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "attn's safetensors reader assumes IEEE-754 float and double.");

inline bool little_endian_host() {
  const std::uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

[[noreturn]] inline void fail(const std::string& source, const std::string& what) {
  throw SafetensorsError("safetensors " + source + ": " + what);
}

inline Dtype parse_dtype(const std::string& text, const std::string& source,
                         const std::string& name) {
  if (text == "F32") return Dtype::F32;
  if (text == "F64") return Dtype::F64;
  fail(source, "tensor '" + name + "' has dtype '" + text + "'; attn reads F32 and F64");
}

/// Parses a whole file held in memory. Every size is checked before it is trusted.
inline SafetensorsFile parse(const unsigned char* bytes, std::uint64_t size,
                             const std::string& source) {
  if (size < 8) fail(source, "file has " + std::to_string(size) + " bytes; at least 8 needed");
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > max_header_bytes) {
    fail(source, "header length " + std::to_string(header_size) + " exceeds the limit of " +
                     std::to_string(max_header_bytes) + " bytes");
  }
  if (header_size > size - 8) {
    fail(source, "header length " + std::to_string(header_size) + " runs past the end of the " +
                     std::to_string(size) + "-byte file");
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header;
  // JSON allows a name twice in an object and nlohmann keeps the last; a safetensors file with
  // two tensors of one name is ambiguous, so the parser callback records every top-level name.
  std::set<std::string> names;
  std::string duplicate;
  const auto record_names = [&](int depth, nlohmann::json::parse_event_t event,
                                nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !names.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_size, record_names);
  } catch (const nlohmann::json::exception& error) {
    fail(source, std::string("header is not valid JSON: ") + error.what());
  }
  if (!duplicate.empty()) fail(source, "header names tensor '" + duplicate + "' more than once");
  if (!header.is_object()) fail(source, "header is not a JSON object");

  const unsigned char* data = bytes + 8 + header_size;
  const std::uint64_t data_size = size - 8 - header_size;
  SafetensorsFile file;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(source, "__metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(source, "__metadata__ '" + key + "' is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets") || !entry["dtype"].is_string() ||
        !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      fail(source,
           "tensor '" + name + "' needs a string dtype, a shape array and two " + "data_offsets");
    }
    SafetensorsTensor tensor;
    tensor.dtype = parse_dtype(entry["dtype"].get<std::string>(), source, name);
    std::uint64_t expected = static_cast<std::uint64_t>(dtype_size(tensor.dtype));
    std::uint64_t nonzero_product = 1;
    for (const auto& extent : entry["shape"]) {
      if (!extent.is_number_unsigned()) {
        fail(source, "tensor '" + name + "' has a shape entry that is not a non-negative integer");
      }
      const auto value = extent.get<std::uint64_t>();
      // Extents multiply into Index element counts later, zeros or not: bound them all.
      const auto largest = static_cast<std::uint64_t>(std::numeric_limits<Index>::max());
      if (value > largest || (value != 0 && nonzero_product > largest / value)) {
        fail(source, "tensor '" + name + "' has a shape whose element count overflows");
      }
      if (value != 0) nonzero_product *= value;
      if (value != 0 && expected > std::numeric_limits<std::uint64_t>::max() / value) {
        fail(source, "tensor '" + name + "' has a shape whose byte size overflows");
      }
      expected *= value;
      tensor.shape.push_back(static_cast<Index>(value));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      fail(source, "tensor '" + name + "' has data_offsets that are not non-negative integers");
    }
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_size) {
      fail(source, "tensor '" + name + "' has data_offsets [" + std::to_string(begin) + ", " +
                       std::to_string(end) + ") outside the " + std::to_string(data_size) +
                       "-byte data section");
    }
    if (end - begin != expected) {
      fail(source, "tensor '" + name + "' covers " + std::to_string(end - begin) +
                       " bytes but its shape and dtype " + dtype_name(tensor.dtype) + " need " +
                       std::to_string(expected));
    }
    tensor.bytes.assign(data + begin, data + end);
    ranges.emplace_back(begin, end);
    file.tensors.emplace(name, std::move(tensor));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      fail(source, "tensors overlap at data offset " + std::to_string(ranges[i].first));
    }
  }
  return file;
}

}  // namespace detail

/// Parses safetensors bytes held in memory.
/// @throws SafetensorsError for any malformed header, offset, shape or dtype.
inline SafetensorsFile parse_safetensors(const std::vector<unsigned char>& bytes) {
  return detail::parse(bytes.data(), bytes.size(), "<memory>");
}

/// Reads a safetensors file.
/// @throws SafetensorsError if the file cannot be read or is malformed.
inline SafetensorsFile read_safetensors(const std::string& path) {
  if (!detail::little_endian_host()) detail::fail(path, "big-endian hosts are not supported");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) detail::fail(path, "cannot open the file");
  const std::streamoff size = in.tellg();
  if (size < 0) detail::fail(path, "cannot determine the file size");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    detail::fail(path, "cannot read the file");
  }
  return detail::parse(bytes.data(), bytes.size(), path);
}

/// Serialises tensors (in name order) and metadata to safetensors bytes.
inline std::vector<unsigned char> serialize_safetensors(const SafetensorsFile& file) {
  nlohmann::json header = nlohmann::json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    header[name] = {{"dtype", dtype_name(tensor.dtype)},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + tensor.bytes.size()}}};
    offset += tensor.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the spec asks
  // Sized once and filled with memcpy: growing the vector with insert() from a string made g++ 12
  // at -O3 report a false -Warray-bounds.
  std::vector<unsigned char> bytes(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  unsigned char* at = bytes.data() + 8;
  std::memcpy(at, text.data(), text.size());
  at += text.size();
  for (const auto& entry : file.tensors) {
    if (entry.second.bytes.empty()) continue;
    std::memcpy(at, entry.second.bytes.data(), entry.second.bytes.size());
    at += entry.second.bytes.size();
  }
  return bytes;
}

/// Writes a safetensors file. @throws SafetensorsError if the file cannot be written.
inline void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  const std::vector<unsigned char> bytes = serialize_safetensors(file);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !out.write(reinterpret_cast<const char*>(bytes.data()),
                         static_cast<std::streamsize>(bytes.size()))) {
    detail::fail(path, "cannot write the file");
  }
}

/// The tensors of a file as a StateDict of Scalar; every tensor must have Scalar's dtype.
/// @throws SafetensorsError naming a tensor whose dtype differs.
template <typename Scalar>
StateDict<Scalar> to_state_dict(const SafetensorsFile& file) {
  constexpr Dtype wanted = dtype_of<Scalar>();
  StateDict<Scalar> dict;
  for (const auto& [name, tensor] : file.tensors) {
    if (tensor.dtype != wanted) {
      throw SafetensorsError("safetensors: tensor '" + name + "' has dtype " +
                             dtype_name(tensor.dtype) + " but " + dtype_name(wanted) +
                             " was requested");
    }
    NamedTensor<Scalar>& out = dict[name];
    out.shape = tensor.shape;
    out.values.resize(tensor.bytes.size() / sizeof(Scalar));
    std::memcpy(out.values.data(), tensor.bytes.data(), out.values.size() * sizeof(Scalar));
  }
  return dict;
}

/// A StateDict as a safetensors file (F32 for float, F64 for double).
template <typename Scalar>
SafetensorsFile from_state_dict(const StateDict<Scalar>& dict,
                                std::map<std::string, std::string> metadata = {}) {
  SafetensorsFile file;
  file.metadata = std::move(metadata);
  for (const auto& [name, tensor] : dict) {
    SafetensorsTensor& out = file.tensors[name];
    out.dtype = dtype_of<Scalar>();
    out.shape = tensor.shape;
    out.bytes.resize(tensor.values.size() * sizeof(Scalar));
    std::memcpy(out.bytes.data(), tensor.values.data(), out.bytes.size());
  }
  return file;
}

/// Loads a layer's parameters from a safetensors file saved from a PyTorch state_dict.
/// @throws SafetensorsError for a malformed file or a dtype other than Scalar's;
///         std::invalid_argument (from load_state_dict) for missing, unknown or mis-shaped names.
template <typename Layer>
void load_safetensors(Layer& layer, const std::string& path) {
  load_state_dict(layer, to_state_dict<typename Layer::Scalar>(read_safetensors(path)));
}

/// Saves a layer's state_dict (parameters and mask buffers) as a safetensors file.
template <typename Layer>
void save_safetensors(const Layer& layer, const std::string& path) {
  write_safetensors(path, from_state_dict(state_dict(layer)));
}

}  // namespace attn::io

#endif  // ATTN_IO_SAFETENSORS_HPP
