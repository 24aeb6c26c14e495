// cnn/io/safetensors.hpp — reads and writes the safetensors format directly.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// then the tensor bytes; offsets count from the end of the header. The reader checks everything
// before trusting it: N within the file, offsets inside the data, sizes equal to
// shape x dtype size, tensors neither overlapping nor leaving gaps. F32, F16 and BF16 tensors can
// be read as float32 weights; other dtypes are listed but refused as weights.
#pragma once
#include <algorithm>
#include <map>

#include "../checked.hpp"
#include "../graph.hpp"
#include "file.hpp"
#include "json.hpp"

namespace cnn {

namespace half {
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float bf16_to_f32(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
// Round-to-nearest-even conversions, used by the writer.
inline uint16_t f32_to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((b >> 16) | 0x40);  // NaN stays NaN
  return uint16_t((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}
inline uint16_t f32_to_f16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000;
  const uint32_t absb = b & 0x7FFFFFFFu;
  if (absb > 0x7F800000u) return uint16_t(sign | 0x7E00);
  if (absb >= 0x477FF000u) return uint16_t(sign | 0x7C00);  // overflow to inf
  if (absb < 0x38800000u) {                                 // subnormal or zero in half
    if (absb < 0x33000000u) return uint16_t(sign);
    const uint32_t e = absb >> 23, m = (absb & 0x7FFFFF) | 0x800000;
    const uint32_t shift = 126 - e;  // half subnormals count units of 2^-24
    const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    uint32_t out = m >> shift;
    if (rem > halfway || (rem == halfway && (out & 1))) ++out;
    return uint16_t(sign | out);
  }
  uint32_t v = absb - (112u << 23);  // rebias exponent
  const uint32_t rem = v & 0x1FFF;
  v >>= 13;
  if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) ++v;
  return uint16_t(sign | v);
}
}  // namespace half

inline int dtype_size(const std::string& dt) {
  static const std::map<std::string, int> sizes{{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},  {"I64", 8},
                                                {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},    {"BOOL", 1},
                                                {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(dt);
  return it == sizes.end() ? 0 : it->second;
}

class SafeTensors : public WeightSource {
 public:
  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // within the data section
  };

  // Opens and validates a file; throws cnn::Error naming the file and the problem.
  static SafeTensors open(const std::string& path) { return SafeTensors(path, FileBytes::open(path)); }
  static SafeTensors from_memory(const std::string& label, std::vector<uint8_t> bytes) {
    return SafeTensors(label, FileBytes::from_memory(std::move(bytes)));
  }

  std::string origin() const override { return path_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (auto& kv : entries_) n.push_back(kv.first);
    return n;
  }
  bool contains(const std::string& name) const override { return entries_.count(name) != 0; }
  std::vector<int64_t> dims(const std::string& name) const override { return entry(name).shape; }
  const Entry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) fail(path_, ": no tensor named '", name, "'");
    return it->second;
  }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::string meta(const std::string& key, const std::string& fallback = "") const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? fallback : it->second;
  }

  void read(const std::string& name, std::vector<float>& out) const override {
    const Entry& e = entry(name);
    const uint8_t* p = bytes_->data() + data_start_ + e.begin;
    const std::size_t n = static_cast<std::size_t>((e.end - e.begin) / dtype_size(e.dtype));
    out.resize(n);
    if (e.dtype == "F32") {
      std::memcpy(out.data(), p, n * 4);  // little-endian hosts (x86, ARM)
    } else if (e.dtype == "F16" || e.dtype == "BF16") {
      const bool f16 = e.dtype == "F16";
      for (std::size_t i = 0; i < n; ++i) {
        const uint16_t h = uint16_t(p[2 * i] | (p[2 * i + 1] << 8));
        out[i] = f16 ? half::f16_to_f32(h) : half::bf16_to_f32(h);
      }
    } else {
      fail(path_, ": tensor '", name, "' has dtype ", e.dtype, "; weights must be F32, F16 or BF16");
    }
  }
  // An I8 tensor (int8 weights, cnn/quantize.hpp).
  std::vector<int8_t> read_int8(const std::string& name) const {
    const Entry& e = entry(name);
    if (e.dtype != "I8") fail(path_, ": tensor '", name, "' has dtype ", e.dtype, ", expected I8");
    const uint8_t* p = bytes_->data() + data_start_ + e.begin;
    return std::vector<int8_t>(reinterpret_cast<const int8_t*>(p), reinterpret_cast<const int8_t*>(p) + (e.end - e.begin));
  }

 private:
  SafeTensors(std::string path, std::shared_ptr<const FileBytes> bytes) : path_(std::move(path)), bytes_(std::move(bytes)) {
    parse();
  }

  [[noreturn]] void bad(const std::string& what) const { fail(path_, ": ", what); }

  void parse() {
    constexpr uint64_t kMaxHeader = 100u << 20;
    const std::size_t size = bytes_->size();
    if (size < 8) bad("file is too short to be safetensors (" + std::to_string(size) + " bytes)");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes_->data()[i];
    if (n > size - 8) bad("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
    if (n > kMaxHeader) bad("header length " + std::to_string(n) + " is implausibly large");
    if (n < 2) bad("header is too short to be JSON");
    data_start_ = 8 + n;
    const uint64_t data_size = size - data_start_;
    const char* h = reinterpret_cast<const char*>(bytes_->data() + 8);
    json::Value root;
    try {
      root = json::Parser(h, h + n).parse_document();
    } catch (const Error& e) {
      bad(std::string("header is not valid JSON: ") + e.what());
    }
    if (!root.is_object()) bad("header is not a JSON object");
    std::vector<std::pair<uint64_t, std::string>> order;
    for (auto& kv : root.object) {
      const std::string& name = kv.first;
      const json::Value& v = kv.second;
      if (name == "__metadata__") {
        if (!v.is_object()) bad("__metadata__ is not an object");
        for (auto& m : v.object) {
          if (!m.second.is_string()) bad("__metadata__ value '" + m.first + "' is not a string");
          metadata_[m.first] = m.second.string;
        }
        continue;
      }
      if (entries_.count(name)) bad("tensor '" + name + "' is listed twice");
      if (!v.is_object()) bad("entry '" + name + "' is not an object");
      const json::Value *dt = v.find("dtype"), *sh = v.find("shape"), *off = v.find("data_offsets");
      if (!dt || !dt->is_string()) bad("tensor '" + name + "' has no dtype string");
      if (!sh || !sh->is_array()) bad("tensor '" + name + "' has no shape array");
      if (!off || !off->is_array() || off->array.size() != 2 || !off->array[0].is_index() || !off->array[1].is_index())
        bad("tensor '" + name + "' has no valid data_offsets [begin, end]");
      Entry e;
      e.dtype = dt->string;
      const int esize = dtype_size(e.dtype);
      if (!esize) bad("tensor '" + name + "' has unknown dtype '" + e.dtype + "'");
      if (sh->array.size() > 32) bad("tensor '" + name + "' has more than 32 dimensions");
      for (auto& d : sh->array) {
        if (!d.is_index() || d.number > 1e12) bad("tensor '" + name + "' has an invalid shape entry");
        e.shape.push_back(int64_t(d.number));
      }
      // Checked element count: a shape whose product would wrap is refused here, by name.
      const uint64_t numel = uint64_t(checked_product(path_ + ": tensor '" + name + "' shape", e.shape));
      e.begin = uint64_t(off->array[0].number);
      e.end = uint64_t(off->array[1].number);
      if (e.begin > e.end) bad("tensor '" + name + "' has data_offsets with begin after end");
      if (e.end > data_size)
        bad("tensor '" + name + "' data [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
            ") lies outside the data section (" + std::to_string(data_size) + " bytes; file truncated?)");
      if (e.end - e.begin != numel * uint64_t(esize))
        bad("tensor '" + name + "' has " + std::to_string(e.end - e.begin) + " bytes but shape " + dims_str(e.shape) +
            " of " + e.dtype + " needs " + std::to_string(numel * esize));
      order.push_back({e.begin, name});
      entries_[name] = std::move(e);
    }
    // Tensors must tile the data section exactly: no overlap, no gap, nothing after the last.
    std::sort(order.begin(), order.end(), [&](auto& a, auto& b) {
      return a.first != b.first ? a.first < b.first : entries_[a.second].end < entries_[b.second].end;
    });
    uint64_t pos = 0;
    std::string prev;
    for (auto& o : order) {
      const Entry& e = entries_[o.second];
      if (e.begin < pos) bad("tensors '" + prev + "' and '" + o.second + "' overlap");
      if (e.begin > pos) bad("gap of " + std::to_string(e.begin - pos) + " bytes before tensor '" + o.second + "'");
      pos = e.end;
      prev = o.second;
    }
    if (pos != data_size) bad(std::to_string(data_size - pos) + " stray bytes after the last tensor");
  }

  std::string path_;
  std::shared_ptr<const FileBytes> bytes_;
  uint64_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Serialises float tensors (stored as F32, F16, BF16, or I8 for values that are whole numbers in
// [-128, 127]) and string metadata into safetensors
// bytes. Tensors are written in name order; the header is padded with spaces to 8 bytes.
struct SafeTensorsWriter {
  struct Item {
    std::vector<int64_t> dims;
    std::vector<float> values;
    std::string dtype = "F32";
  };
  std::map<std::string, Item> tensors;
  std::map<std::string, std::string> metadata;

  void add(const std::string& name, std::vector<int64_t> dims, std::vector<float> values, std::string dtype = "F32") {
    tensors[name] = Item{std::move(dims), std::move(values), std::move(dtype)};
  }

  std::string bytes() const {
    std::string header = "{", data;
    if (!metadata.empty()) {
      header += "\"__metadata__\":{";
      bool first = true;
      for (auto& kv : metadata) {
        header += (first ? "" : ",") + json::quote(kv.first) + ":" + json::quote(kv.second);
        first = false;
      }
      header += "}";
    }
    for (auto& kv : tensors) {
      const Item& t = kv.second;
      const std::size_t begin = data.size();
      for (float f : t.values) {
        if (t.dtype == "F32") data.append(reinterpret_cast<const char*>(&f), 4);
        else if (t.dtype == "I8") data += char(int8_t(f));
        else {
          const uint16_t h = t.dtype == "F16" ? half::f32_to_f16(f) : half::f32_to_bf16(f);
          data += char(h & 0xFF);
          data += char(h >> 8);
        }
      }
      std::string shape;
      for (auto d : t.dims) shape += (shape.empty() ? "" : ",") + std::to_string(d);
      header += std::string(header.size() > 1 ? "," : "") + json::quote(kv.first) + ":{\"dtype\":\"" + t.dtype +
                "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(begin) + "," +
                std::to_string(data.size()) + "]}";
    }
    header += "}";
    while (header.size() % 8) header += ' ';
    std::string out(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xFF);
    return out + header + data;
  }
  void save(const std::string& path) const { write_file_atomic(path, bytes()); }
};

}  // namespace cnn
