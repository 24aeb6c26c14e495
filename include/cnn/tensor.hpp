// cnn/tensor.hpp — float32 NCHW tensors: an owning, 64-byte aligned Tensor and non-owning views.
//
// Layout: activations are stored NCHW, row-major (w fastest), exactly as PyTorch and NumPy hold
// them, so inputs and outputs cross the API boundary without a copy. Inside a Graph, some stages run
// channel-blocked instead (BasicView::blocked; docs/architecture.md says where and why).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "checked.hpp"
#include "error.hpp"

namespace cnn {

constexpr std::size_t kTensorAlignment = 64;  // one cache line, one AVX-512 register
constexpr int64_t kMaxTensorElements = int64_t(1) << 38;  // 1 TiB of float32

struct Shape {
  int64_t n = 0, c = 0, h = 0, w = 0;

  // Plain products for shapes already validated (every Tensor's, every planned shape). A shape
  // read from a file goes through checked_numel first (cnn/checked.hpp).
  int64_t numel() const { return n * c * h * w; }
  int64_t checked_numel(const std::string& context, int64_t limit = kMaxFileElements) const {
    return checked_product(context, {n, c, h, w}, limit);
  }
  int64_t plane() const { return h * w; }               // elements of one channel
  int64_t sample() const { return c * h * w; }          // elements of one batch item
  bool operator==(const Shape& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const {
    return "(" + std::to_string(n) + ", " + std::to_string(c) + ", " + std::to_string(h) + ", " +
           std::to_string(w) + ")";
  }
};

// Aligned heap block of floats. free() with std::free since allocation uses aligned_alloc.
struct AlignedDeleter {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedDeleter>;

inline AlignedFloats allocate_floats(std::size_t count) {
  std::size_t bytes = (count * sizeof(float) + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  if (bytes == 0) bytes = kTensorAlignment;
  auto* p = static_cast<float*>(std::aligned_alloc(kTensorAlignment, bytes));
  if (!p) fail("out of memory allocating ", bytes, " bytes");
  return AlignedFloats(p);
}

// A non-owning view of NCHW data. T is float or const float. Inside a Graph a view may instead
// be channel-blocked (NCHW16c: each image as C/16 blocks of [H][W][16], kernels/blocked.hpp), for
// the layers whose runs_blocked() asked for it; the same number of floats either way.
template <class T>
struct BasicView {
  Shape shape;
  T* data = nullptr;
  bool blocked = false;

  T* sample(int64_t n) const { return data + n * shape.sample(); }
  T* channel(int64_t n, int64_t c) const { return data + (n * shape.c + c) * shape.plane(); }
  T& at(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return data[((n * shape.c + c) * shape.h + h) * shape.w + w];
  }
  operator BasicView<const float>() const { return {shape, data, blocked}; }
};
using TensorView = BasicView<float>;
using ConstTensorView = BasicView<const float>;

// Owning NCHW tensor, zero-initialised, 64-byte aligned. Movable; copy is explicit (clone()).
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape s) : shape_(s) {
    if (s.n < 0 || s.c < 0 || s.h < 0 || s.w < 0) fail("negative tensor shape ", s.str());
    const uint64_t n = uint64_t(s.checked_numel("tensor of shape " + s.str(), kMaxTensorElements));
    data_ = allocate_floats(static_cast<std::size_t>(n));
    std::memset(data_.get(), 0, static_cast<std::size_t>(n) * sizeof(float));
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  Tensor clone() const {
    Tensor t(shape_);
    std::memcpy(t.data(), data(), bytes());
    return t;
  }
  static Tensor from(Shape s, const float* src) {
    Tensor t(s);
    std::memcpy(t.data(), src, t.bytes());
    return t;
  }

  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(float); }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }
  TensorView view() { return {shape_, data_.get()}; }
  ConstTensorView view() const { return {shape_, data_.get()}; }

 private:
  Shape shape_;
  AlignedFloats data_;
};

// Parameters (weights) have their own rank (1-D bias, 2-D linear, 4-D conv), so they are kept as
// a flat aligned array with dims, separate from NCHW activations.
struct Param {
  std::vector<int64_t> dims;
  std::vector<float> values;  // plain storage; kernels repack what they need at load time

  int64_t numel() const {  // dims are checked where they are read (checked_product)
    int64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
  }
  bool empty() const { return values.empty(); }
};

inline std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace cnn
