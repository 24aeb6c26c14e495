// cnn/ops/upsample.hpp — nearest-neighbour upsampling by an integer factor, as PyTorch's
// nn.Upsample(scale_factor=s, mode="nearest"): y[n][c][i][j] = x[n][c][i / s][j / s].
//
// upsample_nearest_reference() is the definition. The layer widens each input row once (factor 2
// with AVX-512 / AVX2: every lane written twice by one permute per output vector) and copies the
// widened row to the other s - 1 output rows.
#pragma once
#include <cstring>

#include "../kernels/cpu.hpp"
#include "layer.hpp"

CNN_KERNELS_BEGIN
namespace cnn {

inline void upsample_nearest_reference(ConstTensorView x, int s, TensorView y) {
  for (int64_t n = 0; n < y.shape.n; ++n)
    for (int64_t c = 0; c < y.shape.c; ++c)
      for (int64_t i = 0; i < y.shape.h; ++i)
        for (int64_t j = 0; j < y.shape.w; ++j) y.at(n, c, i, j) = x.at(n, c, i / s, j / s);
}

namespace kernels {
// out[j] = in[j / s] for j < w * s.
inline void widen_row_generic(const float* in, int64_t w, int s, float* out) {
  for (int64_t j = 0; j < w; ++j)
    for (int k = 0; k < s; ++k) out[j * s + k] = in[j];
}
#ifdef CNN_X86
CNN_TARGET_AVX512 inline void widen_row2_avx512(const float* in, int64_t w, float* out) {
  const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  int64_t j = 0;
  for (; j + 16 <= w; j += 16) {
    const __m512 v = _mm512_loadu_ps(in + j);
    _mm512_storeu_ps(out + 2 * j, _mm512_permutexvar_ps(lo, v));
    _mm512_storeu_ps(out + 2 * j + 16, _mm512_permutexvar_ps(hi, v));
  }
  widen_row_generic(in + j, w - j, 2, out + 2 * j);
}
CNN_TARGET_AVX2 inline void widen_row2_avx2(const float* in, int64_t w, float* out) {
  int64_t j = 0;
  for (; j + 8 <= w; j += 8) {
    const __m256 v = _mm256_loadu_ps(in + j);
    const __m256 a = _mm256_unpacklo_ps(v, v), b = _mm256_unpackhi_ps(v, v);  // 0 0 1 1 4 4 5 5 | 2 2 3 3 6 6 7 7
    _mm256_storeu_ps(out + 2 * j, _mm256_permute2f128_ps(a, b, 0x20));
    _mm256_storeu_ps(out + 2 * j + 8, _mm256_permute2f128_ps(a, b, 0x31));
  }
  widen_row_generic(in + j, w - j, 2, out + 2 * j);
}
#endif
inline void widen_row(const float* in, int64_t w, int s, float* out) {
#ifdef CNN_X86
  if (s == 2 && active_isa() == Isa::AVX512) return widen_row2_avx512(in, w, out);
  if (s == 2 && active_isa() == Isa::AVX2) return widen_row2_avx2(in, w, out);
#endif
  widen_row_generic(in, w, s, out);
}
}  // namespace kernels

class Upsample2d : public Layer {
 public:
  Upsample2d(std::string name, int scale) : Layer(std::move(name)), s_(scale) {
    if (scale < 1 || scale > 64) layer_error("scale must be an integer from 1 to 64");
  }
  std::string type() const override { return "Upsample"; }
  std::string describe() const override { return "nearest x" + std::to_string(s_); }
  int scale() const { return s_; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    return {in[0].n, in[0].c, in[0].h * s_, in[0].w * s_};
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const ConstTensorView x = in[0];
    const int64_t H = x.shape.h, W = x.shape.w, OW = y.shape.w;
    parallel_for(x.shape.n * x.shape.c, y.shape.plane(), [&](int64_t nc) {
      const float* src = x.data + nc * x.shape.plane();
      float* dst = y.data + nc * y.shape.plane();
      for (int64_t i = 0; i < H; ++i) {
        float* row = dst + i * s_ * OW;
        kernels::widen_row(src + i * W, W, s_, row);
        for (int k = 1; k < s_; ++k) std::memcpy(row + k * OW, row, std::size_t(OW) * sizeof(float));
      }
    });
  }

 private:
  int s_;
};

}  // namespace cnn
CNN_KERNELS_END
