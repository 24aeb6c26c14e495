// cnn/io/npy.hpp — NumPy .npy files of float32, the way tensors travel between the engine and
// Python tools: magic "\x93NUMPY", version, header length, a Python-dict header
// {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }, then C-order data.
#pragma once
#include <cctype>

#include "../checked.hpp"
#include "../tensor.hpp"
#include "file.hpp"

namespace cnn {

struct NpyArray {
  std::vector<int64_t> dims;
  std::vector<float> values;
};

namespace detail {
// Finds `'key':` in a .npy header dict and returns what follows it (trimmed).
inline std::string npy_field(const std::string& header, const std::string& key, const std::string& path) {
  const std::size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) fail(path, ": .npy header has no '", key, "' field");
  std::size_t p = header.find(':', k);
  if (p == std::string::npos) fail(path, ": .npy header field '", key, "' has no value");
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  return header.substr(p);
}
}  // namespace detail

// Parses the bytes of a float32 .npy file; `path` names it in errors. Refuses other dtypes,
// Fortran order, shapes whose element count overflows, and truncated or padded data.
inline NpyArray parse_npy(const uint8_t* b, std::size_t size, const std::string& path) {
  if (size < 10 || std::memcmp(b, "\x93NUMPY", 6) != 0) fail(path, ": not a .npy file (bad magic)");
  const int major = b[6];
  std::size_t hlen, hstart;
  if (major == 1) hlen = b[8] | (b[9] << 8), hstart = 10;
  else if (major == 2 || major == 3) {
    if (size < 12) fail(path, ": truncated .npy header");
    hlen = std::size_t(b[8]) | (std::size_t(b[9]) << 8) | (std::size_t(b[10]) << 16) | (std::size_t(b[11]) << 24);
    hstart = 12;
  } else fail(path, ": unsupported .npy version ", major);
  if (hlen > size - hstart) fail(path, ": .npy header length ", hlen, " runs past the end of the file");
  const std::string header(reinterpret_cast<const char*>(b + hstart), hlen);

  const std::string descr = detail::npy_field(header, "descr", path);
  if (descr.size() < 5 || descr[0] != '\'') fail(path, ": .npy header has a malformed 'descr'");
  const std::string dt = descr.substr(1, descr.find('\'', 1) - 1);
  if (dt != "<f4" && dt != "=f4" && dt != "f4")
    fail(path, ": dtype '", dt, "' is not float32 ('<f4'); convert with arr.astype(np.float32)");
  const std::string fo = detail::npy_field(header, "fortran_order", path);
  if (fo.rfind("True", 0) == 0) fail(path, ": Fortran-ordered array; save a C-contiguous array (np.ascontiguousarray)");
  if (fo.rfind("False", 0) != 0) fail(path, ": .npy header has a malformed 'fortran_order'");
  const std::string sh = detail::npy_field(header, "shape", path);
  if (sh.empty() || sh[0] != '(') fail(path, ": .npy header has a malformed 'shape'");
  const std::size_t close = sh.find(')');
  if (close == std::string::npos) fail(path, ": .npy header has a malformed 'shape'");
  NpyArray a;
  std::size_t p = 1;
  while (p < close) {
    while (p < close && (sh[p] == ' ' || sh[p] == ',')) ++p;
    if (p >= close) break;
    if (!std::isdigit(static_cast<unsigned char>(sh[p]))) fail(path, ": .npy header has a malformed 'shape'");
    int64_t d = 0;
    while (p < close && std::isdigit(static_cast<unsigned char>(sh[p]))) {
      d = d * 10 + (sh[p++] - '0');
      if (d > kMaxFileElements) fail(path, ": .npy shape is implausibly large");
    }
    a.dims.push_back(d);
    if (a.dims.size() > 32) fail(path, ": .npy shape has more than 32 dimensions");
  }
  // The element count, checked: a shape whose product overflows is refused, never wrapped.
  const uint64_t numel = uint64_t(checked_product(path + ": .npy shape", a.dims));
  const std::size_t data_bytes = size - hstart - hlen;
  if (data_bytes != numel * 4)
    fail(path, ": shape ", dims_str(a.dims), " needs ", numel * 4, " bytes of data but the file has ", data_bytes,
         data_bytes < numel * 4 ? " (truncated)" : "");
  a.values.resize(static_cast<std::size_t>(numel));
  if (numel) std::memcpy(a.values.data(), b + hstart + hlen, numel * 4);  // (an empty vector's data() may be null)
  return a;
}

// Reads a float32 .npy file.
inline NpyArray read_npy(const std::string& path) {
  auto f = FileBytes::open(path);
  return parse_npy(f->data(), f->size(), path);
}

// An (N, C, H, W) float32 array as a Tensor.
inline Tensor npy_to_nchw(const NpyArray& a, const std::string& path) {
  if (a.dims.size() != 4)
    fail(path, ": expected a 4-D array (N, C, H, W), got shape ", dims_str(a.dims));
  for (auto d : a.dims)
    if (d == 0) fail(path, ": empty array of shape ", dims_str(a.dims));
  const Shape shape{a.dims[0], a.dims[1], a.dims[2], a.dims[3]};
  shape.checked_numel(path + ": .npy shape", kMaxTensorElements);
  return Tensor::from(shape, a.values.data());
}

// Reads an (N, C, H, W) float32 array as a Tensor.
inline Tensor read_npy_nchw(const std::string& path) { return npy_to_nchw(read_npy(path), path); }

inline std::string npy_bytes(const std::vector<int64_t>& dims, const float* data) {
  std::string shape;
  uint64_t n = 1;
  for (auto d : dims) shape += std::to_string(d) + ", ", n *= uint64_t(d);
  if (dims.size() != 1 && !shape.empty()) shape.resize(shape.size() - 2);
  else if (!shape.empty()) shape.resize(shape.size() - 1);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xFF);
  out += char(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data), n * 4);
  return out;
}

// Writes a float32 .npy atomically.
inline void write_npy(const std::string& path, const std::vector<int64_t>& dims, const float* data) {
  write_file_atomic(path, npy_bytes(dims, data));
}

}  // namespace cnn
