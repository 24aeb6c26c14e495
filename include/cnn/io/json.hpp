// cnn/io/json.hpp — a small, strict JSON reader and writer for file headers (safetensors,
// metadata). Input is untrusted: nesting depth and sizes are bounded, every error is a cnn::Error
// that says where parsing stopped.
#pragma once
#include <cmath>
#include <locale>
#include <sstream>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../error.hpp"

namespace cnn::json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object } type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in file order

  bool is_object() const { return type == Type::Object; }
  bool is_array() const { return type == Type::Array; }
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Number; }
  const Value* find(const std::string& key) const {
    for (auto& kv : object)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  // An exact non-negative integer (JSON numbers are doubles; offsets fit in 2^53).
  bool is_index() const {
    return type == Type::Number && number >= 0 && number <= 9007199254740992.0 && std::floor(number) == number;
  }
};

class Parser {
 public:
  Parser(const char* begin, const char* end) : p_(begin), begin_(begin), end_(end) {}

  Value parse_document() {
    Value v = parse_value(0);
    skip_ws();
    if (p_ != end_) error("trailing characters after the JSON value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;

  [[noreturn]] void error(const std::string& what) const {
    fail("JSON ", what, " at byte ", static_cast<long long>(p_ - begin_));
  }
  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool consume(char c) {
    skip_ws();
    if (p_ != end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) error(std::string("expected '") + c + "'");
  }
  bool literal(const char* word) {
    const char* q = p_;
    for (const char* w = word; *w; ++w, ++q)
      if (q == end_ || *q != *w) return false;
    p_ = q;
    return true;
  }

  Value parse_value(int depth) {
    if (depth > kMaxDepth) error("nested too deeply");
    skip_ws();
    if (p_ == end_) error("ended early");
    Value v;
    const char c = *p_;
    if (c == '{') {
      ++p_;
      v.type = Value::Type::Object;
      if (consume('}')) return v;
      do {
        skip_ws();
        if (p_ == end_ || *p_ != '"') error("expected a string key");
        std::string key = parse_string();
        expect(':');
        v.object.emplace_back(std::move(key), parse_value(depth + 1));
      } while (consume(','));
      expect('}');
    } else if (c == '[') {
      ++p_;
      v.type = Value::Type::Array;
      if (consume(']')) return v;
      do v.array.push_back(parse_value(depth + 1));
      while (consume(','));
      expect(']');
    } else if (c == '"') {
      v.type = Value::Type::String;
      v.string = parse_string();
    } else if (literal("true")) {
      v.type = Value::Type::Bool;
      v.boolean = true;
    } else if (literal("false")) {
      v.type = Value::Type::Bool;
    } else if (literal("null")) {
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Value::Type::Number;
      v.number = parse_number();
    } else {
      error(std::string("unexpected character '") + c + "'");
    }
    return v;
  }

  double parse_number() {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    auto digits = [&] {
      const char* d = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == d) error("malformed number");
    };
    digits();
    if (p_ != end_ && *p_ == '.') ++p_, digits();
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      digits();
    }
    // The C locale's '.', whatever locale the application has set.
    std::istringstream in(std::string(start, p_));
    in.imbue(std::locale::classic());
    double v = 0;
    in >> v;
    return v;
  }

  static void put_utf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) s += char(cp);
    else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    else if (cp < 0x10000) s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    else
      s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F)), s += char(0x80 | ((cp >> 6) & 0x3F)),
          s += char(0x80 | (cp & 0x3F));
  }
  uint32_t hex4() {
    if (end_ - p_ < 4) error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      const char c = *p_;
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else error("bad \\u escape");
    }
    return v;
  }
  std::string parse_string() {
    ++p_;  // opening quote
    std::string s;
    while (true) {
      if (p_ == end_) error("unterminated string");
      const char c = *p_++;
      if (c == '"') return s;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      if (c != '\\') {
        s += c;
        continue;
      }
      if (p_ == end_) error("unterminated escape");
      const char e = *p_++;
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') error("unpaired surrogate");
            p_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            error("unpaired surrogate");
          }
          put_utf8(s, cp);
          break;
        }
        default: error("bad escape");
      }
    }
  }

  const char* p_;
  const char* begin_;
  const char* end_;
};

inline Value parse(const std::string& text) { return Parser(text.data(), text.data() + text.size()).parse_document(); }

// A number as JSON text, independent of the application's locale.
inline std::string number(double v) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out.precision(17);
  out << v;
  return out.str();
}

// Quotes a string for JSON output.
inline std::string quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += char(c);
    else if (c == '\n') o += "\\n";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else o += char(c);
  }
  return o + "\"";
}

}  // namespace cnn::json
