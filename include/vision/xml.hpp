// vision/xml.hpp - a minimal, defensive XML reader (elements, text, attributes, comments,
// declarations) sufficient for OpenCV FileStorage XML files such as cascades. Any malformed or
// truncated input throws vision::Error naming the source and the byte offset.
#pragma once
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "image.hpp"

namespace vision {
namespace xml {

struct Node {
  std::string name;
  std::string text;  // concatenated character data directly inside this element
  std::vector<std::pair<std::string, std::string>> attrs;
  std::vector<std::unique_ptr<Node>> children;

  const Node* child(const char* n) const {
    for (auto& c : children)
      if (c->name == n) return c.get();
    return nullptr;
  }
  std::string attr(const char* n) const {
    for (auto& a : attrs)
      if (a.first == n) return a.second;
    return {};
  }
};

class Parser {
 public:
  Parser(const char* p, size_t n, std::string src) : p_(p), n_(n), src_(std::move(src)) {}

  std::unique_ptr<Node> parse() {
    auto root = std::make_unique<Node>();
    root->name = "#document";
    skip_misc();
    if (i_ >= n_) fail("no XML element found");
    root->children.push_back(element(0));
    skip_misc();
    if (i_ < n_) fail("unexpected content after the root element");
    return root;
  }

 private:
  const char* p_;
  size_t n_, i_ = 0;
  std::string src_;

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(src_ + ": malformed XML at byte " + std::to_string(i_) + ": " + why);
  }
  bool starts(const char* s) const {
    size_t l = std::strlen(s);
    return i_ + l <= n_ && std::memcmp(p_ + i_, s, l) == 0;
  }
  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\r' || p_[i_] == '\n')) ++i_;
  }
  void skip_until(const char* end) {
    size_t l = std::strlen(end);
    while (i_ + l <= n_ && std::memcmp(p_ + i_, end, l) != 0) ++i_;
    if (i_ + l > n_) fail(std::string("unterminated construct (missing '") + end + "')");
    i_ += l;
  }
  void skip_misc() {  // whitespace, comments, <?...?>, <!DOCTYPE ...>
    for (;;) {
      skip_ws();
      if (starts("<!--")) skip_until("-->");
      else if (starts("<?")) skip_until("?>");
      else if (starts("<!")) skip_until(">");
      else return;
    }
  }
  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == ':' || c == '.';
  }
  std::string name() {
    size_t b = i_;
    while (i_ < n_ && name_char(p_[i_])) ++i_;
    if (b == i_) fail("expected a name");
    return std::string(p_ + b, i_ - b);
  }
  void append_text(std::string& out, size_t b, size_t e) {
    for (size_t k = b; k < e; ++k) {
      if (p_[k] != '&') { out += p_[k]; continue; }
      const char* ents[] = {"&lt;", "&gt;", "&amp;", "&quot;", "&apos;"};
      const char rep[] = {'<', '>', '&', '"', '\''};
      bool ok = false;
      for (int j = 0; j < 5; ++j) {
        size_t l = std::strlen(ents[j]);
        if (k + l <= e && std::memcmp(p_ + k, ents[j], l) == 0) { out += rep[j]; k += l - 1; ok = true; break; }
      }
      if (!ok) { out += '&'; }
    }
  }
  std::unique_ptr<Node> element(int depth) {
    if (depth > 64) fail("elements nested too deeply");
    if (i_ >= n_ || p_[i_] != '<') fail("expected '<'");
    ++i_;
    auto node = std::make_unique<Node>();
    node->name = name();
    for (;;) {
      skip_ws();
      if (i_ >= n_) fail("truncated start tag <" + node->name + ">");
      if (p_[i_] == '/') {
        if (i_ + 1 >= n_ || p_[i_ + 1] != '>') fail("expected '/>'");
        i_ += 2;
        return node;
      }
      if (p_[i_] == '>') { ++i_; break; }
      std::string an = name();
      skip_ws();
      if (i_ >= n_ || p_[i_] != '=') fail("expected '=' after attribute " + an);
      ++i_;
      skip_ws();
      if (i_ >= n_ || (p_[i_] != '"' && p_[i_] != '\'')) fail("expected a quoted attribute value");
      char q = p_[i_++];
      size_t b = i_;
      while (i_ < n_ && p_[i_] != q) ++i_;
      if (i_ >= n_) fail("unterminated attribute value");
      std::string v;
      append_text(v, b, i_);
      ++i_;
      node->attrs.emplace_back(an, v);
    }
    for (;;) {
      size_t b = i_;
      while (i_ < n_ && p_[i_] != '<') ++i_;
      append_text(node->text, b, i_);
      if (i_ >= n_) fail("truncated: element <" + node->name + "> is not closed");
      if (starts("<!--")) { skip_until("-->"); continue; }
      if (starts("<![CDATA[")) {
        i_ += 9;
        size_t cb = i_;
        skip_until("]]>");
        node->text.append(p_ + cb, i_ - 3 - cb);
        continue;
      }
      if (starts("<?")) { skip_until("?>"); continue; }
      if (starts("</")) {
        i_ += 2;
        std::string en = name();
        skip_ws();
        if (i_ >= n_ || p_[i_] != '>') fail("truncated end tag </" + en + ">");
        ++i_;
        if (en != node->name) fail("end tag </" + en + "> does not match <" + node->name + ">");
        return node;
      }
      node->children.push_back(element(depth + 1));
    }
  }
};

inline std::unique_ptr<Node> parse(const std::string& text, const std::string& source) {
  return Parser(text.data(), text.size(), source).parse();
}

}  // namespace xml
}  // namespace vision
