// vision/image_io.hpp - loading (JPEG, PNG, BMP, TGA, GIF first frame) and saving (PNG, JPEG)
// through Debian's libstb (link with -lstb, headers in /usr/include/stb).
// Every failure throws vision::Error("<file>: <problem>"); nothing is decoded before the pixel
// limit is checked, and saving writes a temporary file renamed into place (no partial output).
#pragma once
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <string>
#include <vector>

#include "image.hpp"

extern "C" {
unsigned char* stbi_load_from_memory(unsigned char const* buffer, int len, int* x, int* y, int* channels_in_file,
                                     int desired_channels);
int stbi_info_from_memory(unsigned char const* buffer, int len, int* x, int* y, int* comp);
int stbi_is_16_bit_from_memory(unsigned char const* buffer, int len);
const char* stbi_failure_reason(void);
void stbi_image_free(void* retval_from_stbi_load);
typedef void stbi_write_func(void* context, void* data, int size);
int stbi_write_png_to_func(stbi_write_func* func, void* context, int w, int h, int comp, const void* data,
                           int stride_in_bytes);
int stbi_write_jpg_to_func(stbi_write_func* func, void* context, int x, int y, int comp, const void* data,
                           int quality);
}

namespace vision {

struct LoadOptions {
  size_t max_pixels = 100000000;       // refuse larger images before decoding (default 100 MP)
  size_t max_file_bytes = size_t(1) << 30;  // refuse files above 1 GiB without reading them
  int channels = 0;                    // 0: as stored (1, 3 or 4), 1: grey (BT.601), 3: RGB
  bool apply_exif = true;              // rotate/flip JPEGs by their EXIF orientation tag
};

namespace detail {

inline bool read_file(const std::string& path, std::vector<uint8_t>& out, size_t max_bytes) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, not an image file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return false;
  std::streamoff n = f.tellg();
  if (n < 0) throw Error(path + ": cannot read file (not a regular file?)");
  if (size_t(n) > max_bytes)
    throw Error(path + ": file is " + std::to_string(n) + " bytes, above the limit of " + std::to_string(max_bytes));
  out.resize(size_t(n));
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(out.data()), n)) throw Error(path + ": read error");
  return true;
}

// EXIF orientation (1..8) of a JPEG, 1 when absent or unreadable.
inline int jpeg_exif_orientation(const uint8_t* p, size_t n) {
  if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return 1;
  size_t i = 2;
  while (i + 4 <= n) {
    if (p[i] != 0xFF) return 1;
    uint8_t marker = p[i + 1];
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { i += 2; continue; }
    if (marker == 0xFF) { ++i; continue; }
    if (marker == 0xDA || marker == 0xD9) return 1;  // start of scan: no EXIF before it
    size_t len = (size_t(p[i + 2]) << 8) | p[i + 3];
    if (len < 2 || i + 2 + len > n) return 1;
    const uint8_t* seg = p + i + 4;
    size_t sl = len - 2;
    if (marker == 0xE1 && sl >= 14 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
      const uint8_t* t = seg + 6;
      size_t tl = sl - 6;
      bool le = t[0] == 'I' && t[1] == 'I';
      if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
      auto u16 = [&](size_t o) -> unsigned { return le ? t[o] | (t[o + 1] << 8) : (t[o] << 8) | t[o + 1]; };
      auto u32 = [&](size_t o) -> size_t {
        return le ? size_t(t[o]) | (size_t(t[o + 1]) << 8) | (size_t(t[o + 2]) << 16) | (size_t(t[o + 3]) << 24)
                  : (size_t(t[o]) << 24) | (size_t(t[o + 1]) << 16) | (size_t(t[o + 2]) << 8) | size_t(t[o + 3]);
      };
      if (u16(2) != 42) return 1;
      size_t ifd = u32(4);
      if (ifd + 2 > tl) return 1;
      unsigned count = u16(ifd);
      for (unsigned k = 0; k < count; ++k) {
        size_t e = ifd + 2 + size_t(k) * 12;
        if (e + 12 > tl) return 1;
        if (u16(e) == 0x0112) {
          unsigned v = u16(e + 8);
          return (v >= 1 && v <= 8) ? int(v) : 1;
        }
      }
      return 1;
    }
    i += 2 + len;
  }
  return 1;
}

inline Image apply_orientation(const Image& src, int o) {
  if (o <= 1 || o > 8) return src;
  const int w = src.width(), h = src.height(), c = src.channels();
  const bool swap = o >= 5;
  Image dst(swap ? h : w, swap ? w : h, c);
  for (int y = 0; y < dst.height(); ++y)
    for (int x = 0; x < dst.width(); ++x) {
      int sx = x, sy = y;  // position in the stored image shown at (x, y)
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sx = x; sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
      }
      for (int k = 0; k < c; ++k) dst.at(x, y, k) = src.at(sx, sy, k);
    }
  return dst;
}

// Width and height from a PNG IHDR or a JPEG SOF header without decoding; false if not found.
inline bool sniff_size(const uint8_t* p, size_t n, uint32_t& w, uint32_t& h) {
  auto be32 = [&](size_t o) { return (uint32_t(p[o]) << 24) | (uint32_t(p[o + 1]) << 16) | (uint32_t(p[o + 2]) << 8) | p[o + 3]; };
  if (n >= 24 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(p + 12, "IHDR", 4) == 0) {
    w = be32(16);
    h = be32(20);
    return true;
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    size_t i = 2;
    while (i + 9 < n) {
      if (p[i] != 0xFF) return false;
      uint8_t m = p[i + 1];
      if (m == 0xFF) { ++i; continue; }
      size_t len = (size_t(p[i + 2]) << 8) | p[i + 3];
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
        h = (uint32_t(p[i + 5]) << 8) | p[i + 6];
        w = (uint32_t(p[i + 7]) << 8) | p[i + 8];
        return true;
      }
      if (m == 0xDA || len < 2) return false;
      i += 2 + len;
    }
  }
  return false;
}

inline bool has_jpeg_eoi(const uint8_t* p, size_t n) {
  // The end-of-image marker, allowing some trailing padding/garbage as common encoders leave.
  size_t lo = n > 4096 ? n - 4096 : 0;
  for (size_t i = n; i-- > lo + 1;)
    if (p[i - 1] == 0xFF && p[i] == 0xD9) return true;
  return false;
}

}  // namespace detail

// Decode an image held in memory; `name` is used in error messages.
inline Image decode_image(const uint8_t* data, size_t n, const std::string& name, const LoadOptions& opt = {}) {
  if (n == 0) throw Error(name + ": empty file");
  if (n > size_t(0x7fffffff)) throw Error(name + ": file too large to decode");
  uint32_t sw = 0, sh = 0;
  if (detail::sniff_size(data, n, sw, sh) && uint64_t(sw) * sh > opt.max_pixels)
    throw Error(name + ": image is " + std::to_string(sw) + "x" + std::to_string(sh) + ", above the limit of " +
                std::to_string(opt.max_pixels) + " pixels");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, int(n), &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    throw Error(name + ": not a readable image (JPEG, PNG, BMP, TGA, GIF)" + (why ? std::string(": ") + why : ""));
  }
  if (w <= 0 || h <= 0) throw Error(name + ": image has no pixels (" + std::to_string(w) + "x" + std::to_string(h) + ")");
  if (size_t(w) * size_t(h) > opt.max_pixels)
    throw Error(name + ": image is " + std::to_string(w) + "x" + std::to_string(h) + ", above the limit of " +
                std::to_string(opt.max_pixels) + " pixels");
  const bool is_jpeg = n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
  if (is_jpeg && !detail::has_jpeg_eoi(data, n)) throw Error(name + ": truncated JPEG (no end-of-image marker)");
  // stb converts 16-bit PNGs to 8 bits, CMYK JPEGs to RGB, grey+alpha we widen to RGBA.
  int want = (comp == 2) ? 4 : comp;
  int gw = 0, gh = 0, gc = 0;
  unsigned char* px = stbi_load_from_memory(data, int(n), &gw, &gh, &gc, want);
  if (!px) {
    const char* why = stbi_failure_reason();
    throw Error(name + ": cannot decode image" + (why ? std::string(": ") + why : ""));
  }
  Image img;
  try {
    img.reset(gw, gh, want);
    std::memcpy(img.data(), px, img.size_bytes());
  } catch (...) {
    stbi_image_free(px);
    throw;
  }
  stbi_image_free(px);
  if (is_jpeg && opt.apply_exif) img = detail::apply_orientation(img, detail::jpeg_exif_orientation(data, n));
  if (opt.channels == 1) img = to_grey(img);
  else if (opt.channels == 3) img = to_rgb(img);
  return img;
}

inline Image load_image(const std::string& path, const LoadOptions& opt = {}) {
  std::vector<uint8_t> bytes;
  if (!detail::read_file(path, bytes, opt.max_file_bytes)) throw Error(path + ": cannot open file");
  return decode_image(bytes.data(), bytes.size(), path, opt);
}

namespace detail {
inline void append_bytes(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}
inline void write_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::string tmp = path + ".part";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(path + ": cannot create file");
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());
      throw Error(path + ": write error");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write file");
  }
}
inline bool ends_with_ci(const std::string& s, const char* suf) {
  size_t n = std::strlen(suf);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - n + i])) != suf[i]) return false;
  return true;
}
}  // namespace detail

inline std::vector<uint8_t> encode_png(const Image& img) {
  if (img.empty()) throw Error("encode_png: empty image");
  std::vector<uint8_t> out;
  if (!stbi_write_png_to_func(detail::append_bytes, &out, img.width(), img.height(), img.channels(), img.data(),
                              int(img.stride())))
    throw Error("encode_png: encoder failed");
  return out;
}

inline std::vector<uint8_t> encode_jpeg(const Image& img, int quality = 90) {
  if (img.empty()) throw Error("encode_jpeg: empty image");
  std::vector<uint8_t> out;
  if (!stbi_write_jpg_to_func(detail::append_bytes, &out, img.width(), img.height(), img.channels(), img.data(),
                              quality))
    throw Error("encode_jpeg: encoder failed");
  return out;
}

// Save as PNG or JPEG according to the extension (.png, .jpg, .jpeg).
inline void save_image(const std::string& path, const Image& img, int jpeg_quality = 90) {
  if (img.empty()) throw Error(path + ": refusing to save an empty image");
  if (detail::ends_with_ci(path, ".png")) detail::write_atomically(path, encode_png(img));
  else if (detail::ends_with_ci(path, ".jpg") || detail::ends_with_ci(path, ".jpeg"))
    detail::write_atomically(path, encode_jpeg(img, jpeg_quality));
  else throw Error(path + ": unsupported output format (use .png, .jpg or .jpeg)");
}

}  // namespace vision
