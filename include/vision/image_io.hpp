// vision/image_io.hpp - loading JPEG (libjpeg-turbo), PNG (libpng), BMP, TGA and GIF's first frame
// (stb_image), saving PNG and JPEG (stb_image_write). Link with -ljpeg -lpng -lstb (the CMake
// target facecnn::vision does). JPEG and PNG, the formats photos come in, go to the two decoders
// that are fuzzed continuously upstream; other formats are refused by name.
// Every failure throws vision::Error("<file>: <problem>"); nothing is allocated for pixels before
// the image's size is checked against LoadOptions (pixels, and a memory budget that counts the
// decoder's own working memory), and saving writes a temporary file renamed into place.
#pragma once
#include <algorithm>
#include <cctype>
#include <climits>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>  // the warning codes (JWRN_*)
#include <png.h>

#include "image.hpp"

extern "C" {
unsigned char* stbi_load_from_memory(unsigned char const* buffer, int len, int* x, int* y, int* channels_in_file,
                                     int desired_channels);
int stbi_info_from_memory(unsigned char const* buffer, int len, int* x, int* y, int* comp);
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
  // Memory budget: an image is refused before any pixel is allocated when decoding it (output +
  // the decoder's working memory) or working on it afterwards (output + `work_bytes_per_pixel`
  // per pixel, declared by the caller: the apps declare their detector's) would need more.
  size_t memory_budget = size_t(512) << 20;
  size_t work_bytes_per_pixel = 0;
  // A progressive JPEG may hold any number of scans, each a full pass over the image: a few
  // kilobytes can ask for minutes of work. Real encoders write about ten.
  int max_jpeg_scans = 500;
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

// The formats decode_image reads, told apart by their leading bytes (TGA has no signature: it is
// what stb_image accepts once every signature below has been ruled out). stb tries its own JPEG
// decoder first on anything it is given, and takes as a JPEG any file that opens with 0xFF, fill
// bytes (more 0xFF) and the SOI marker: every file whose first byte is 0xFF goes to libjpeg, which
// accepts only FF D8 and refuses the rest.
enum class ImageFormat { jpeg, png, bmp, gif, tga };

// Signatures of formats that are refused by name rather than handed to a decoder.
inline const char* refused_format(const uint8_t* p, size_t n) {
  auto starts = [&](const char* s, size_t len) { return n >= len && std::memcmp(p, s, len) == 0; };
  if (starts("#?RADIANCE", 10) || starts("#?RGBE", 6)) return "Radiance HDR";
  if (starts("8BPS", 4)) return "Photoshop (PSD)";
  if (starts("\x53\x80\xF6\x34", 4)) return "Softimage PIC";
  if (n >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7' && std::isspace(p[2])) return "PNM";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "TIFF";
  if (n >= 12 && starts("RIFF", 4) && std::memcmp(p + 8, "WEBP", 4) == 0) return "WebP";
  if (n >= 12 && std::memcmp(p + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
  if (starts("\0\0\0\x0CjP  ", 8) || starts("\xFF\x4F\xFF\x51", 4)) return "JPEG 2000";
  return nullptr;
}

inline bool sniff_format(const uint8_t* p, size_t n, ImageFormat& f) {
  auto starts = [&](const char* s, size_t len) { return n >= len && std::memcmp(p, s, len) == 0; };
  if (n >= 1 && p[0] == 0xFF) f = ImageFormat::jpeg;  // see above: never to stb
  else if (starts("\x89PNG\r\n\x1a\n", 8)) f = ImageFormat::png;
  else if (starts("BM", 2)) f = ImageFormat::bmp;
  else if (starts("GIF87a", 6) || starts("GIF89a", 6)) f = ImageFormat::gif;
  else return false;
  return true;
}

[[noreturn]] inline void refuse_size(const std::string& name, uint64_t w, uint64_t h, const LoadOptions& opt) {
  throw Error(name + ": image is " + std::to_string(w) + "x" + std::to_string(h) + ", above the limit of " +
              std::to_string(opt.max_pixels) + " pixels");
}

// Whether a w x h image of `channels` output channels, whose decoding needs `decoder_per_pixel`
// bytes per pixel (output and decoder state; the estimates are stated beside each decoder below),
// fits the limits: its decoding, and its output plus the caller's declared work, within the budget.
inline bool fits_limits(uint64_t w, uint64_t h, uint64_t decoder_per_pixel, int channels, const LoadOptions& opt) {
  const uint64_t per_pixel = std::max<uint64_t>(decoder_per_pixel, uint64_t(channels) + opt.work_bytes_per_pixel);
  return w > 0 && h > 0 && w * h <= opt.max_pixels && w * h * per_pixel <= opt.memory_budget;  // no wrap: w, h < 2^32
}

// Throws the error that says which limit a w x h image breaks (nothing when it fits).
inline void check_limits(const std::string& name, uint64_t w, uint64_t h, uint64_t decoder_per_pixel, int channels,
                         const LoadOptions& opt) {
  if (w == 0 || h == 0) throw Error(name + ": image has no pixels (" + std::to_string(w) + "x" + std::to_string(h) + ")");
  if (w * h > opt.max_pixels) refuse_size(name, w, h, opt);
  const uint64_t per_pixel = std::max<uint64_t>(decoder_per_pixel, uint64_t(channels) + opt.work_bytes_per_pixel);
  const uint64_t need = w * h * per_pixel;
  if (need > opt.memory_budget)
    throw Error(name + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels need " +
                std::to_string((need + (1 << 20) - 1) >> 20) + " MiB, above the memory budget of " +
                std::to_string(opt.memory_budget >> 20) + " MiB");
}

// ---- JPEG: libjpeg-turbo ------------------------------------------------------------------------
// libjpeg reports errors through a callback that must not return; it jumps back to decode_jpeg,
// which then throws. Every object with a destructor is created before the setjmp, so the jump
// skips none; a C++ exception after the setjmp (a limit, an allocation) frees libjpeg's state
// first. Warnings that mean the entropy-coded data is damaged (truncation, bad codes) are
// errors too: the decoder would otherwise fill the rest of the picture with grey.
struct JpegState {
  jpeg_error_mgr mgr;  // first: libjpeg's err pointer is also a pointer to this struct
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
  int max_scans;
};

inline void jpeg_fail(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegState*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

inline void jpeg_message(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  const int code = c->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
      code == JWRN_ARITH_BAD_CODE || code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL ||
      code == JWRN_BOGUS_PROGRESSION) {
    reinterpret_cast<JpegState*>(c->err)->truncated = code == JWRN_JPEG_EOF;
    jpeg_fail(c);
  }
  // others (extraneous bytes between markers, unknown JFIF revision, a bad ICC marker) are harmless
}

inline void jpeg_count_scans(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegState*>(c->err);
  if (c->is_decompressor && reinterpret_cast<j_decompress_ptr>(c)->input_scan_number > e->max_scans) {
    std::snprintf(e->message, sizeof e->message, "more than %d progressive scans", e->max_scans);
    std::longjmp(e->jump, 1);
  }
}

// Colour JPEGs decode to RGB, grey ones to one channel, CMYK/YCCK (Adobe's inverted convention,
// the one Photoshop writes) to RGB. Budget per pixel: the output, plus for progressive files the
// coefficient buffer (2 bytes per component per pixel) that libjpeg keeps for the whole image.
inline Image decode_jpeg(const uint8_t* data, size_t n, const std::string& name, const LoadOptions& opt) {
  Image img;
  std::vector<uint8_t> cmyk_row;
  jpeg_decompress_struct cinfo;
  JpegState err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  err.mgr.emit_message = jpeg_message;
  err.message[0] = '\0';
  err.truncated = false;
  err.max_scans = opt.max_jpeg_scans;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    if (err.truncated) throw Error(name + ": truncated JPEG (" + err.message + ")");
    throw Error(name + ": corrupt JPEG: " + err.message);
  }
  jpeg_create_decompress(&cinfo);
  err.progress.progress_monitor = jpeg_count_scans;
  cinfo.progress = &err.progress;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  const int channels = cinfo.num_components == 1 ? 1 : 3;
  cinfo.out_color_space = cmyk ? JCS_CMYK : channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  const uint64_t per_pixel = uint64_t(channels) + (cinfo.progressive_mode ? 2u * uint64_t(cinfo.num_components) : 0u);
  if (!fits_limits(cinfo.image_width, cinfo.image_height, per_pixel, channels, opt)) {
    jpeg_destroy_decompress(&cinfo);
    check_limits(name, cinfo.image_width, cinfo.image_height, per_pixel, channels, opt);  // throws
  }
  cinfo.mem->max_memory_to_use = long(std::min<size_t>(opt.memory_budget, size_t(LONG_MAX)));
  jpeg_start_decompress(&cinfo);
  try {
    img.reset(int(cinfo.output_width), int(cinfo.output_height), channels);
    if (cmyk) cmyk_row.resize(size_t(cinfo.output_width) * 4);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* row = img.row(int(cinfo.output_scanline));
    JSAMPROW target = cmyk ? cmyk_row.data() : row;
    jpeg_read_scanlines(&cinfo, &target, 1);
    if (cmyk) {
      const bool inverted = cinfo.saw_Adobe_marker;
      for (size_t x = 0; x < cinfo.output_width; ++x) {
        const uint8_t* q = &cmyk_row[4 * x];
        for (int k = 0; k < 3; ++k) {
          unsigned v = inverted ? unsigned(q[k]) * q[3] : (255u - q[k]) * (255u - q[3]);
          row[3 * x + size_t(k)] = uint8_t((v + 127) / 255);
        }
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return img;
}

// ---- PNG: libpng ----------------------------------------------------------------------------------
// Same error discipline as JPEG. Checksums are verified (a damaged critical chunk is an error; a
// damaged ancillary chunk is dropped). 16-bit samples keep their high byte, palettes and
// transparency expand to RGB(A), grey+alpha widens to RGBA. Budget per pixel: the output (libpng
// works a row at a time, interlaced files included, into the output image).
struct PngReader {
  const uint8_t* data;
  size_t size, pos;
  std::jmp_buf jump;
  char message[256];
};

inline void png_fail(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", msg);
  std::longjmp(r->jump, 1);
}

inline void png_quiet(png_structp, png_const_charp) {}

inline void png_read_bytes(png_structp png, png_bytep out, png_size_t len) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (len > r->size - r->pos) png_error(png, "truncated PNG (file ends inside a chunk)");
  std::memcpy(out, r->data + r->pos, len);
  r->pos += len;
}

inline Image decode_png(const uint8_t* data, size_t n, const std::string& name, const LoadOptions& opt) {
  Image img;
  std::vector<png_bytep> rows;
  PngReader reader{data, n, 0, {}, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_fail, png_quiet);
  if (!png) throw Error(name + ": cannot start the PNG decoder");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error(name + ": cannot start the PNG decoder");
  }
  if (setjmp(reader.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(name + ": " + (std::strncmp(reader.message, "truncated", 9) == 0 ? "" : "corrupt PNG: ") +
                reader.message);
  }
  png_set_read_fn(png, &reader, png_read_bytes);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  const int color = png_get_color_type(png, info);
  const bool alpha = (color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
  png_set_strip_16(png);
  png_set_packing(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (!(color & PNG_COLOR_MASK_COLOR) && alpha) png_set_gray_to_rgb(png);  // grey + alpha: as RGBA
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  try {
    check_limits(name, w, h, uint64_t(channels), channels, opt);
    img.reset(int(w), int(h), channels);
    rows.resize(h);
  } catch (...) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.row(int(y));
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

// ---- BMP, TGA, GIF (first frame): stb_image -----------------------------------------------------
// Budget per pixel: stb's own buffer (up to 4 channels; GIF keeps two more frame-sized planes) and
// our copy of it.
inline Image decode_with_stb(const uint8_t* data, size_t n, const std::string& name, const LoadOptions& opt,
                             const char* what) {
  if (n > size_t(0x7fffffff)) throw Error(name + ": file too large to decode");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, int(n), &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    throw Error(name + ": " + (what ? std::string("corrupt ") + what : "not a readable image (JPEG, PNG, BMP, TGA, GIF)") +
                (why ? std::string(": ") + why : ""));
  }
  const int want = (comp == 2) ? 4 : comp;  // grey + alpha widened to RGBA
  check_limits(name, uint64_t(std::max(w, 0)), uint64_t(std::max(h, 0)), 4u + 2u + uint64_t(want), want, opt);
  int gw = 0, gh = 0, gc = 0;
  unsigned char* px = stbi_load_from_memory(data, int(n), &gw, &gh, &gc, want);
  if (!px) {
    const char* why = stbi_failure_reason();
    throw Error(name + ": cannot decode " + (what ? what : "image") + ": " + (why ? why : "unknown reason"));
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
  return img;
}

}  // namespace detail

// Decode an image held in memory; `name` is used in error messages.
inline Image decode_image(const uint8_t* data, size_t n, const std::string& name, const LoadOptions& opt = {}) {
  if (n == 0) throw Error(name + ": empty file");
  if (const char* other = detail::refused_format(data, n))
    throw Error(name + ": " + other + " images are not supported (JPEG, PNG, BMP, TGA, GIF)");
  detail::ImageFormat format = detail::ImageFormat::tga;
  const bool known = detail::sniff_format(data, n, format);
  Image img;
  switch (format) {
    case detail::ImageFormat::jpeg: img = detail::decode_jpeg(data, n, name, opt); break;
    case detail::ImageFormat::png: img = detail::decode_png(data, n, name, opt); break;
    case detail::ImageFormat::bmp: img = detail::decode_with_stb(data, n, name, opt, "BMP"); break;
    case detail::ImageFormat::gif: img = detail::decode_with_stb(data, n, name, opt, "GIF"); break;
    case detail::ImageFormat::tga: img = detail::decode_with_stb(data, n, name, opt, known ? "TGA" : nullptr); break;
  }
  // (each step only when it changes something: a copy of a large image doubles the peak memory)
  const int orientation = format == detail::ImageFormat::jpeg && opt.apply_exif ? detail::jpeg_exif_orientation(data, n) : 1;
  if (orientation > 1) img = detail::apply_orientation(img, orientation);
  if (opt.channels == 1 && img.channels() != 1) img = to_grey(img);
  else if (opt.channels == 3 && img.channels() != 3) img = to_rgb(img);
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
