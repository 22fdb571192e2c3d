// attn/io/safetensors.hpp: reading and writing the safetensors format, so weights move between
// PyTorch and attn unchanged.
//
// A file is: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name
// to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data section),
// an optional "__metadata__" string map, then the raw little-endian data. attn reads every dtype
// of the format (BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64); the header
// (every name, dtype, shape and byte range) is validated before any tensor is used, and an
// unknown dtype is refused. SafetensorsReader then reads one tensor, or part of one, at a time,
// so a large file is never held whole; read_safetensors reads every tensor through it.
//
// Loading converts, forgiving what it safely can (docs/weights.md has the table):
//  - a layer's parameters load from F64, F32, BF16 or F16 into the layer's float or double:
//    exactly where the value is representable, F64 into float rounded to nearest (a finite
//    value beyond float's range is refused rather than turned into infinity); integer and BOOL
//    parameters are refused, since weights stored as integers are quantised or a mistake;
//  - the book's `mask` buffer, which attn derives from context_length, is checked in any dtype
//    (PyTorch users often save it as .bool()) and must equal triu(ones, 1);
//  - load_tensor / to_state_dict read data tensors: floating dtypes as above, integers and BOOL
//    when the value is exactly representable (token ids load as attn::Index or as double).
// Saving writes F32 (float), F64 (double) or I64 (attn::Index). Every error is a SafetensorsError
// naming the file (or "<memory>"), the tensor and the values.
#ifndef ATTN_IO_SAFETENSORS_HPP
#define ATTN_IO_SAFETENSORS_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/io/dtype.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn::io {

/// A safetensors file was malformed or did not hold what was asked for. The message names the
/// file (or "<memory>"), the tensor and the offending values.
class SafetensorsError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

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

/// Where one tensor lies in a file: dtype, shape, and its bytes [begin, end) in the data section.
struct SafetensorsEntry {
  Dtype dtype = Dtype::F32;
  std::vector<Index> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  std::uint64_t byte_size() const { return end - begin; }
  std::uint64_t numel() const {
    return byte_size() / static_cast<std::uint64_t>(dtype_size(dtype));
  }
};

/// A file's header: where each tensor lies, by name, and the "__metadata__" strings.
struct SafetensorsHeader {
  std::map<std::string, SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
};

/// The largest JSON header attn accepts: 100 MB, the limit of the reference implementation.
/// A header length beyond it is rejected before anything is allocated.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

namespace detail {

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
  std::string known;
  for (const auto& info : dtype_table) {
    if (text == info.name) return info.dtype;
    known += (known.empty() ? "" : ", ") + std::string(info.name);
  }
  fail(source, "tensor '" + name + "' has dtype '" + text +
                   "', which attn does not know; safetensors dtypes attn reads: " + known);
}

/// The 8-byte little-endian header length at the start of a file of `size` bytes, checked
/// against the limit and the file's size before anything is allocated.
inline std::uint64_t header_length(const unsigned char* first_bytes, std::uint64_t size,
                                   const std::string& source) {
  if (!little_endian_host()) fail(source, "big-endian hosts are not supported");
  if (size < 8) fail(source, "file has " + std::to_string(size) + " bytes; at least 8 needed");
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | first_bytes[i];
  if (header_size > max_header_bytes) {
    fail(source, "header length " + std::to_string(header_size) + " exceeds the limit of " +
                     std::to_string(max_header_bytes) + " bytes");
  }
  if (header_size > size - 8) {
    fail(source, "header length " + std::to_string(header_size) + " runs past the end of the " +
                     std::to_string(size) + "-byte file");
  }
  return header_size;
}

/// Parses and checks the JSON header (`header_size` bytes at `text`) of a file whose data
/// section has `data_size` bytes: every name, dtype, shape and byte range, before any tensor's
/// bytes are read.
inline SafetensorsHeader parse_header(const char* text, std::uint64_t header_size,
                                      std::uint64_t data_size, const std::string& source) {
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
    header = nlohmann::json::parse(text, text + header_size, record_names);
  } catch (const nlohmann::json::exception& error) {
    fail(source, std::string("header is not valid JSON: ") + error.what());
  }
  if (!duplicate.empty()) fail(source, "header names tensor '" + duplicate + "' more than once");
  if (!header.is_object()) fail(source, "header is not a JSON object");

  SafetensorsHeader result;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(source, "__metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(source, "__metadata__ '" + key + "' is not a string");
        result.metadata[key] = value.get<std::string>();
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
    SafetensorsEntry tensor;
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
    tensor.begin = offsets[0].get<std::uint64_t>();
    tensor.end = offsets[1].get<std::uint64_t>();
    if (tensor.begin > tensor.end || tensor.end > data_size) {
      fail(source, "tensor '" + name + "' has data_offsets [" + std::to_string(tensor.begin) +
                       ", " + std::to_string(tensor.end) + ") outside the " +
                       std::to_string(data_size) + "-byte data section");
    }
    if (tensor.byte_size() != expected) {
      fail(source, "tensor '" + name + "' covers " + std::to_string(tensor.byte_size()) +
                       " bytes but its shape and dtype " + dtype_name(tensor.dtype) + " need " +
                       std::to_string(expected));
    }
    ranges.emplace_back(tensor.begin, tensor.end);
    result.tensors.emplace(name, std::move(tensor));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      fail(source, "tensors overlap at data offset " + std::to_string(ranges[i].first));
    }
  }
  return result;
}

/// A BOOL byte other than 0 or 1 has no meaning; refusing it keeps every converted value well
/// defined (and a mask check cannot be fooled by "true" written as 2). `first` is the index of
/// bytes[0] in the tensor.
inline void check_bool_bytes(Dtype dtype, const unsigned char* bytes, std::uint64_t count,
                             std::uint64_t first, const std::string& source,
                             const std::string& name) {
  if (dtype != Dtype::BOOL) return;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (bytes[i] > 1) {
      fail(source, "tensor '" + name + "' is BOOL but element " + std::to_string(first + i) +
                       " holds the byte " + std::to_string(bytes[i]) + "; BOOL is 0 or 1");
    }
  }
}

/// Parses a whole file held in memory. Every size is checked before it is trusted.
inline SafetensorsFile parse(const unsigned char* bytes, std::uint64_t size,
                             const std::string& source) {
  const std::uint64_t header_size = header_length(bytes, size, source);
  SafetensorsHeader header = parse_header(reinterpret_cast<const char*>(bytes + 8), header_size,
                                          size - 8 - header_size, source);
  const unsigned char* data = bytes + 8 + header_size;
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  for (const auto& [name, entry] : header.tensors) {
    check_bool_bytes(entry.dtype, data + entry.begin, entry.byte_size(), 0, source, name);
    SafetensorsTensor& tensor = file.tensors[name];
    tensor.dtype = entry.dtype;
    tensor.shape = entry.shape;
    tensor.bytes.assign(data + entry.begin, data + entry.end);
  }
  return file;
}

/// "'a', 'b', ..." : the first names of a map, for messages.
template <typename Map>
std::string first_names(const Map& tensors, int most) {
  std::string names;
  int listed = 0;
  for (const auto& entry : tensors) {
    if (listed++ == most) return names + ", ...";
    names += (names.empty() ? "'" : ", '") + entry.first + "'";
  }
  return names.empty() ? std::string("no tensors") : names;
}

}  // namespace detail

/// Parses safetensors bytes held in memory.
/// @throws SafetensorsError for any malformed header, offset, shape or dtype.
inline SafetensorsFile parse_safetensors(const std::vector<unsigned char>& bytes) {
  return detail::parse(bytes.data(), bytes.size(), "<memory>");
}

/// A safetensors file opened for reading one tensor at a time. Opening reads and checks the
/// header only (every name, dtype, shape and byte range); a tensor's bytes are read when asked
/// for, so a model loads without the whole file in memory (a 500 MB GPT-2 needs the largest
/// piece it converts at once, not 500 MB more). Reading seeks one stream: use a reader from one
/// thread at a time.
class SafetensorsReader {
 public:
  /// @throws SafetensorsError naming `path` if it cannot be read or its header is malformed.
  explicit SafetensorsReader(const std::string& path)
      : path_(path), in_(path, std::ios::binary | std::ios::ate) {
    if (!in_) detail::fail(path_, "cannot open the file");
    const std::streamoff size = in_.tellg();
    if (size < 0) detail::fail(path_, "cannot determine the file size");
    const auto file_size = static_cast<std::uint64_t>(size);
    unsigned char length[8] = {};
    in_.seekg(0);
    if (file_size >= 8 && !in_.read(reinterpret_cast<char*>(length), 8)) {
      detail::fail(path_, "cannot read the file");
    }
    const std::uint64_t header_size = detail::header_length(length, file_size, path_);
    std::string text(static_cast<std::size_t>(header_size), '\0');
    if (!in_.read(text.data(), static_cast<std::streamsize>(header_size))) {
      detail::fail(path_, "cannot read the header");
    }
    header_ = detail::parse_header(text.data(), header_size, file_size - 8 - header_size, path_);
    data_start_ = 8 + header_size;
  }

  const std::string& path() const { return path_; }
  /// Every tensor's dtype, shape and place, by name.
  const std::map<std::string, SafetensorsEntry>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool contains(const std::string& name) const { return header_.tensors.count(name) != 0; }
  /// @throws SafetensorsError naming the file, `name` and the names the file holds.
  const SafetensorsEntry& entry(const std::string& name) const {
    const auto found = header_.tensors.find(name);
    if (found == header_.tensors.end()) {
      detail::fail(path_, "has no tensor '" + name + "' (it holds " +
                              detail::first_names(header_.tensors, 8) + ")");
    }
    return found->second;
  }

  /// Elements [first, first + count) of tensor `name`, as they are stored.
  /// @throws SafetensorsError for a range outside the tensor, a read error, or a BOOL byte
  ///         other than 0 or 1.
  void read_bytes(const std::string& name, std::uint64_t first, std::uint64_t count,
                  unsigned char* out) {
    const SafetensorsEntry& tensor = entry(name);
    if (first > tensor.numel() || count > tensor.numel() - first) {
      detail::fail(path_, "elements [" + std::to_string(first) + ", " +
                              std::to_string(first + count) + ") of tensor '" + name +
                              "' were asked for; it has " + std::to_string(tensor.numel()));
    }
    const auto size = static_cast<std::uint64_t>(dtype_size(tensor.dtype));
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(data_start_ + tensor.begin + first * size));
    if (!in_.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(count * size))) {
      detail::fail(path_, "cannot read tensor '" + name +
                              "' (the file is shorter than its "
                              "header says, or was changed)");
    }
    detail::check_bool_bytes(tensor.dtype, out, count, first, path_, name);
  }

  /// Elements [first, first + count) of tensor `name` converted to Scalar (float, double or
  /// attn::Index) as load_tensor converts them.
  /// @throws SafetensorsError as read_bytes, or naming an element Scalar cannot hold exactly.
  template <typename Scalar>
  void read_values(const std::string& name, std::uint64_t first, std::uint64_t count, Scalar* out);

  /// The whole tensor `name`, its bytes as stored.
  SafetensorsTensor read(const std::string& name) {
    const SafetensorsEntry& tensor = entry(name);
    SafetensorsTensor result{tensor.dtype, tensor.shape,
                             std::vector<unsigned char>(tensor.byte_size())};
    read_bytes(name, 0, tensor.numel(), result.bytes.data());
    return result;
  }

  /// Every tensor, read once each.
  SafetensorsFile read_all() {
    SafetensorsFile file;
    file.metadata = header_.metadata;
    for (const auto& entry : header_.tensors) file.tensors.emplace(entry.first, read(entry.first));
    return file;
  }

 private:
  std::string path_;
  std::ifstream in_;
  SafetensorsHeader header_;
  std::uint64_t data_start_ = 0;
};

/// Reads a whole safetensors file (SafetensorsReader reads one tensor at a time).
/// @throws SafetensorsError if the file cannot be read or is malformed.
inline SafetensorsFile read_safetensors(const std::string& path) {
  return SafetensorsReader(path).read_all();
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
  at = std::copy(text.begin(), text.end(), at);
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

namespace detail {

/// What a tensor is read for: a layer's parameter takes floating dtypes only; data (load_tensor,
/// to_state_dict) takes every dtype whose values fit exactly.
enum class Use { parameter, data };

template <typename Scalar>
const char* scalar_name() {
  if constexpr (std::is_same_v<Scalar, float>) {
    return "float";
  } else if constexpr (std::is_same_v<Scalar, double>) {
    return "double";
  } else {
    return "attn::Index";
  }
}

template <typename Scalar>
constexpr void check_target() {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double> ||
                    std::is_same_v<Scalar, Index>,
                "attn reads safetensors tensors as float, double or attn::Index.");
}

/// Element `i` of `tensor` as Scalar; refuses (with the element's index and value) a value that
/// would change: an integer Scalar cannot hold, a non-integer or out-of-range value for
/// attn::Index, a finite F64 beyond float's range.
template <typename Scalar>
Scalar convert_element(const Element& e, Dtype dtype, std::uint64_t i, const std::string& source,
                       const std::string& name) {
  const auto refuse = [&](const std::string& why) {
    fail(source, "tensor '" + name + "' element " + std::to_string(i) + " (" + dtype_name(dtype) +
                     " " + e.text() + ") " + why);
  };
  constexpr double two_to_63 = 9223372036854775808.0;
  if constexpr (std::is_same_v<Scalar, Index>) {
    static_assert(sizeof(Index) == 8, "attn::Index is a 64-bit signed integer.");
    if (e.floating) {
      if (!(std::trunc(e.real) == e.real) || !(e.real >= -two_to_63 && e.real < two_to_63)) {
        refuse("is not an integer attn::Index can hold");
      }
      return static_cast<Index>(e.real);
    }
    const auto largest = static_cast<std::uint64_t>(std::numeric_limits<Index>::max());
    if (e.magnitude > largest + (e.negative ? 1 : 0)) refuse("is beyond attn::Index's range");
    if (!e.negative) return static_cast<Index>(e.magnitude);
    return e.magnitude == largest + 1 ? std::numeric_limits<Index>::min()
                                      : -static_cast<Index>(e.magnitude);
  } else {
    if (e.floating) {
      const auto value = static_cast<Scalar>(e.real);  // F64 to float: rounded to nearest
      if (std::isinf(value) && !std::isinf(e.real)) {
        refuse(
            "is beyond float's range (about 3.4e38); load it into double (e.g. "
            "MultiHeadAttention<double>)");
      }
      return value;
    }
    // An integer is accepted when Scalar holds it exactly (|n| <= 2^24 for float, 2^53 for
    // double, and larger ones that happen to be representable).
    const auto value = static_cast<Scalar>(e.magnitude);
    if (!(value < static_cast<Scalar>(2 * two_to_63)) ||
        static_cast<std::uint64_t>(value) != e.magnitude) {
      refuse(std::string("is not exactly representable as ") + scalar_name<Scalar>() +
             (std::is_same_v<Scalar, float> ? "; load it as double or attn::Index"
                                            : "; load it as attn::Index"));
    }
    return e.negative ? -value : value;
  }
}

/// Refuses a parameter stored as an integer or BOOL: weights stored so are quantised or a
/// mistake.
inline void check_parameter_dtype(Dtype dtype, const std::string& source, const std::string& name) {
  if (!is_floating(dtype)) {
    fail(source, "parameter '" + name + "' has dtype " + dtype_name(dtype) +
                     "; attn loads parameters from F64, F32, BF16 or F16 (save the floating-" +
                     "point weights, e.g. with .float())");
  }
}

/// `count` stored elements of `dtype` as Scalar; `first` is the index of bytes' first element
/// in its tensor, for messages.
/// @throws SafetensorsError naming the element and value that would change.
template <typename Scalar>
void convert_values(Dtype dtype, const unsigned char* bytes, std::uint64_t count,
                    std::uint64_t first, Scalar* out, const std::string& source,
                    const std::string& name) {
  check_target<Scalar>();
  if (dtype == dtype_of<Scalar>()) {  // the same type: a copy
    if (count != 0) std::memcpy(out, bytes, count * sizeof(Scalar));
    return;
  }
  if constexpr (!std::is_same_v<Scalar, Index>) {
    // F16, BF16 and F32 widen exactly into float and double: nothing to check, one loop each.
    const auto widen = [&](std::size_t size, auto to_float) {
      for (std::uint64_t i = 0; i < count; ++i)
        out[i] = static_cast<Scalar>(to_float(bytes + i * size));
    };
    switch (dtype) {
      case Dtype::BF16:
        return widen(2, [](const unsigned char* at) {
          return bfloat16_to_float(read_element<std::uint16_t>(at));
        });
      case Dtype::F16:
        return widen(2, [](const unsigned char* at) {
          return f16_to_float(read_element<std::uint16_t>(at));
        });
      case Dtype::F32:
        return widen(4, [](const unsigned char* at) { return read_element<float>(at); });
      default:
        break;
    }
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    out[i] = convert_element<Scalar>(element(dtype, bytes, i), dtype, first + i, source, name);
  }
}

/// A whole tensor as Scalar values, row-major.
/// @throws SafetensorsError for a dtype `use` refuses or a value that would change.
template <typename Scalar>
std::vector<Scalar> convert(const SafetensorsTensor& tensor, Use use, const std::string& source,
                            const std::string& name) {
  if (use == Use::parameter) check_parameter_dtype(tensor.dtype, source, name);
  const std::size_t count =
      tensor.bytes.size() / static_cast<std::size_t>(dtype_size(tensor.dtype));
  std::vector<Scalar> values(count);
  convert_values(tensor.dtype, tensor.bytes.data(), count, 0, values.data(), source, name);
  return values;
}

/// The book's `mask` buffer as a file holds it, in any dtype: it must be triu(ones(n, n), 1) of
/// the layer's shape, 1 above the diagonal and 0 elsewhere. attn derives the mask, so a correct
/// one is not loaded, only checked; a different one would change what the layer computes.
inline void check_causal_mask(const SafetensorsTensor& tensor, const std::vector<Index>& shape,
                              const std::string& source, const std::string& name) {
  if (tensor.shape != shape) {
    fail(source, "mask buffer '" + name + "' has shape " +
                     attn::detail::shape_string(tensor.shape) + " but the layer's causal mask is " +
                     attn::detail::shape_string(shape) + " (its context_length)");
  }
  for (std::size_t i = 0;
       i < tensor.bytes.size() / static_cast<std::size_t>(dtype_size(tensor.dtype)); ++i) {
    const Index row = static_cast<Index>(i) / shape[1], col = static_cast<Index>(i) % shape[1];
    const int expected = attn::detail::causal_mask_value<int>(shape, static_cast<Index>(i));
    const Element e = element(tensor.dtype, tensor.bytes.data(), i);
    const bool equal = e.floating
                           ? e.real == expected
                           : !e.negative && e.magnitude == static_cast<std::uint64_t>(expected);
    if (!equal) {
      fail(source, "mask buffer '" + name + "' (" + dtype_name(tensor.dtype) + " " +
                       attn::detail::shape_string(shape) +
                       ") is not the causal mask triu(ones, diagonal=1): " + "element (" +
                       std::to_string(row) + ", " + std::to_string(col) + ") is " + e.text() +
                       " where it should be " + std::to_string(expected));
    }
  }
}

}  // namespace detail

template <typename Scalar>
void SafetensorsReader::read_values(const std::string& name, std::uint64_t first,
                                    std::uint64_t count, Scalar* out) {
  detail::check_target<Scalar>();
  const Dtype dtype = entry(name).dtype;
  if (dtype == dtype_of<Scalar>()) {  // read in place
    read_bytes(name, first, count, reinterpret_cast<unsigned char*>(out));
    return;
  }
  std::vector<unsigned char> bytes(static_cast<std::size_t>(count) *
                                   static_cast<std::size_t>(dtype_size(dtype)));
  read_bytes(name, first, count, bytes.data());
  detail::convert_values(dtype, bytes.data(), count, first, out, path_, name);
}

/// The tensors of a file as a StateDict of Scalar (float or double), each converted as data:
/// floating dtypes exactly (F64 into float rounded to nearest), integers and BOOL when exactly
/// representable. `source` names the file in messages.
/// @throws SafetensorsError naming the tensor, element and value that cannot be converted.
template <typename Scalar>
StateDict<Scalar> to_state_dict(const SafetensorsFile& file,
                                const std::string& source = "<memory>") {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "A StateDict holds float or double values.");
  StateDict<Scalar> dict;
  for (const auto& [name, tensor] : file.tensors) {
    NamedTensor<Scalar>& out = dict[name];
    out.shape = tensor.shape;
    out.values = detail::convert<Scalar>(tensor, detail::Use::data, source, name);
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
/// Parameters convert from F64, F32, BF16 or F16 into the layer's Scalar (F64 into float rounded
/// to nearest); the book's `mask` buffers may be absent or present in any dtype (BOOL, integer or
/// floating) and must then equal triu(ones, 1) of the layer's (context_length, context_length).
/// Nothing is modified unless the whole file is valid.
/// @throws SafetensorsError naming the file for a malformed file, an integer or BOOL parameter,
///         a value float cannot hold, a wrong mask, or a missing, unexpected or mis-shaped name.
template <typename Layer>
void load_safetensors(Layer& layer, const std::string& path) {
  using Scalar = typename Layer::Scalar;
  SafetensorsReader file(path);  // one tensor's bytes in memory at a time
  std::map<std::string, StateEntry<const Scalar>> entries;
  static_cast<const Layer&>(layer).visit_state(
      [&](const StateEntry<const Scalar>& entry) { entries.emplace(entry.name, entry); });
  StateDict<Scalar> dict;
  for (const auto& [name, stored] : file.tensors()) {
    const auto entry = entries.find(name);
    if (entry == entries.end()) {
      dict[name].shape = stored.shape;  // unexpected: load_state_dict reports it with its shape
    } else if (entry->second.kind == StateKind::causal_mask) {
      detail::check_causal_mask(file.read(name), entry->second.shape, path, name);  // derived
    } else {
      dict[name] = {stored.shape,
                    detail::convert<Scalar>(file.read(name), detail::Use::parameter, path, name)};
    }
  }
  try {
    load_state_dict(layer, dict);
  } catch (const std::invalid_argument& error) {
    detail::fail(path, error.what());  // the same list of problems, with the file's name
  }
}

/// Saves a layer's state_dict (parameters and mask buffers) as a safetensors file.
template <typename Layer>
void save_safetensors(const Layer& layer, const std::string& path) {
  write_safetensors(path, from_state_dict(state_dict(layer)));
}

// ---- Single tensors ---------------------------------------------------------------------------

/// The tensor `name` of a file as a Tensor<Scalar, Rank>, Scalar float, double or attn::Index.
/// Floating dtypes convert exactly (F64 into float rounded to nearest); integers and BOOL (as 0
/// and 1) convert when exactly representable, so token ids saved as I64 load as attn::Index, or
/// as float up to 2^24 and as double up to 2^53. Into attn::Index, floating values must be
/// integers. `source` names the file in messages.
/// @throws SafetensorsError naming the file and tensor: absent (with the names the file holds),
///         a rank other than Rank (with the file's shape), or a value that cannot be converted.
template <typename Scalar, int Rank>
Tensor<Scalar, Rank> to_tensor(const SafetensorsFile& file, const std::string& name,
                               const std::string& source = "<memory>") {
  detail::check_target<Scalar>();
  const auto found = file.tensors.find(name);
  if (found == file.tensors.end()) {
    detail::fail(source, "has no tensor '" + name + "' (it holds " +
                             detail::first_names(file.tensors, 8) + ")");
  }
  const SafetensorsTensor& tensor = found->second;
  if (static_cast<int>(tensor.shape.size()) != Rank) {
    detail::fail(source, "tensor '" + name + "' has shape " +
                             attn::detail::shape_string(tensor.shape) + ", rank " +
                             std::to_string(tensor.shape.size()) + ", but rank " +
                             std::to_string(Rank) + " was asked for");
  }
  Shape<Rank> shape{};
  std::copy(tensor.shape.begin(), tensor.shape.end(), shape.begin());
  const std::vector<Scalar> values =
      detail::convert<Scalar>(tensor, detail::Use::data, source, name);
  auto result = Tensor<Scalar, Rank>::uninitialized(shape);
  std::copy(values.begin(), values.end(), result.data());
  return result;
}

/// Reads the tensor `name` of the safetensors file at `path`, converted as to_tensor says:
/// `auto ids = attn::io::load_tensor<attn::Index, 2>("batch.safetensors", "ids");`.
/// @throws SafetensorsError as read_safetensors and to_tensor do, naming `path`.
template <typename Scalar, int Rank>
Tensor<Scalar, Rank> load_tensor(const std::string& path, const std::string& name) {
  SafetensorsReader reader(path);
  SafetensorsFile one;  // only this tensor is read
  one.tensors.emplace(name, reader.read(name));
  return to_tensor<Scalar, Rank>(one, name, path);
}

/// A float, double or attn::Index tensor of any rank, as it will be saved (F32, F64 or I64,
/// contiguous), so that tensors of different ranks go in one list to save_tensors. Converts from a
/// Tensor or any view (strided views are copied in index order).
class TensorToSave {
 public:
  template <typename T, int Rank>
  TensorToSave(const TensorView<T, Rank>& view) {  // NOLINT(google-explicit-constructor)
    using Scalar = std::remove_const_t<T>;
    const Tensor<Scalar, Rank> contiguous(TensorView<const Scalar, Rank>{view});
    tensor_.dtype = dtype_of<Scalar>();
    tensor_.shape.assign(contiguous.shape().begin(), contiguous.shape().end());
    tensor_.bytes.resize(static_cast<std::size_t>(contiguous.numel()) * sizeof(Scalar));
    if (!tensor_.bytes.empty()) {
      std::memcpy(tensor_.bytes.data(), contiguous.data(), tensor_.bytes.size());
    }
  }
  template <typename Scalar, int Rank>
  TensorToSave(const Tensor<Scalar, Rank>& tensor)  // NOLINT(google-explicit-constructor)
      : TensorToSave(tensor.view()) {}

  const SafetensorsTensor& tensor() const { return tensor_; }

 private:
  SafetensorsTensor tensor_;
};

/// Saves named tensors (and optional metadata strings) as one safetensors file, which PyTorch
/// reads back with safetensors.torch.load_file or python/attn_safetensors.py's load_file:
/// `attn::io::save_tensors("out.safetensors", {{"x", x}, {"out", out.view()}});`
/// @throws SafetensorsError if the file cannot be written.
inline void save_tensors(const std::string& path,
                         const std::map<std::string, TensorToSave>& tensors,
                         std::map<std::string, std::string> metadata = {}) {
  SafetensorsFile file;
  file.metadata = std::move(metadata);
  for (const auto& [name, tensor] : tensors) file.tensors[name] = tensor.tensor();
  write_safetensors(path, file);
}

}  // namespace attn::io

#endif  // ATTN_IO_SAFETENSORS_HPP
