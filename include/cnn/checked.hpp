// cnn/checked.hpp — overflow-checked size arithmetic for every size that comes from a file.
//
// The rule (docs/robustness.md): a count, dimension or coordinate read from a file (tensor shapes
// in .npy and safetensors, cascade geometry, image dimensions, manifest boxes) is never multiplied
// or added in plain int / int64 arithmetic before it has been checked. It goes through
// checked_product / checked_sum, which refuse negative operands, any intermediate result above
// the caller's limit (so nothing can wrap) and throw an error naming the context (the file, the
// tensor, the stage...). The exception type is a template argument so that the vision headers
// throw vision::Error and the engine cnn::Error from the same code.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>

#include "error.hpp"

namespace cnn {

// Largest element count the engine accepts from a file (2^40: 4 TiB of float32, far above any
// real tensor, far below int64 overflow even after multiplying by an element size).
constexpr int64_t kMaxFileElements = int64_t(1) << 40;

namespace checked {

// out = a * b when 0 <= a, b and a * b <= limit; false otherwise (out untouched). Never overflows.
constexpr bool mul(int64_t a, int64_t b, int64_t limit, int64_t& out) noexcept {
  if (a < 0 || b < 0 || limit < 0) return false;
  if (a != 0 && b > limit / a) return false;
  out = a * b;
  return true;
}

// out = a + b when 0 <= a, b and a + b <= limit; false otherwise (out untouched). Never overflows.
constexpr bool add(int64_t a, int64_t b, int64_t limit, int64_t& out) noexcept {
  if (a < 0 || b < 0 || limit < 0 || a > limit - b) return false;
  out = a + b;
  return true;
}

// The product of a list of non-negative sizes, or false when one is negative or a partial product
// exceeds limit (an empty list gives 1).
template <class It>
bool product(It first, It last, int64_t limit, int64_t& out) noexcept {
  int64_t p = 1;
  if (limit < 1) return false;
  for (; first != last; ++first)
    if (!mul(p, int64_t(*first), limit, p)) return false;
  out = p;
  return true;
}

template <class It>
std::string dims_text(It first, It last, const char* sep = " x ") {
  std::string s;
  for (It i = first; i != last; ++i) s += (i == first ? "" : sep) + std::to_string(int64_t(*i));
  return s.empty() ? "(scalar)" : s;
}

}  // namespace checked

// The product of `dims` (non-negative, at most `limit`), else throws E("<context>: ...").
template <class E = Error, class Container>
int64_t checked_product(const std::string& context, const Container& dims, int64_t limit = kMaxFileElements) {
  int64_t out = 0;
  if (checked::product(std::begin(dims), std::end(dims), limit, out)) return out;
  for (auto d : dims)
    if (int64_t(d) < 0)
      throw E(context + ": negative size in " + checked::dims_text(std::begin(dims), std::end(dims)));
  throw E(context + ": size " + checked::dims_text(std::begin(dims), std::end(dims)) + " exceeds the limit of " +
          std::to_string(limit));
}
template <class E = Error>
int64_t checked_product(const std::string& context, std::initializer_list<int64_t> dims,
                        int64_t limit = kMaxFileElements) {
  return checked_product<E, std::initializer_list<int64_t>>(context, dims, limit);
}

// a + b (both non-negative, sum at most `limit`), else throws E("<context>: ...").
template <class E = Error>
int64_t checked_sum(const std::string& context, int64_t a, int64_t b, int64_t limit = kMaxFileElements) {
  int64_t out = 0;
  if (checked::add(a, b, limit, out)) return out;
  if (a < 0 || b < 0) throw E(context + ": negative size in " + std::to_string(a) + " + " + std::to_string(b));
  throw E(context + ": " + std::to_string(a) + " + " + std::to_string(b) + " exceeds the limit of " +
          std::to_string(limit));
}

}  // namespace cnn
