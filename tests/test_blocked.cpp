// The channel-blocked kernels (kernels/blocked.hpp) against conv2d_reference on random shapes, through
// the layout conversions, with every epilogue (the residual also in place) and thread count.
#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace cnn;
namespace blk = cnn::kernels::blocked;

namespace {

// One image [C][P] in the blocked layout (64-byte aligned, as the kernels require).
AlignedVector blocked_copy(const float* x, int64_t C, int64_t P) {
  AlignedVector b(std::size_t(C * P));
  blk::to_blocked(x, C, P, b.data());
  return b;
}

}  // namespace

TEST_CASE("blocked layout conversions are exact inverses and put channel c of pixel p where it belongs") {
  if (detect_isa() != Isa::AVX512) return;  // the blocked kernels are AVX-512 only
  std::mt19937 rng(41);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t C = 16 * std::uniform_int_distribution<int>(1, 5)(rng), P = std::uniform_int_distribution<int>(1, 70)(rng);
    std::vector<float> x(std::size_t(C * P));
    test::fill_random(x.data(), C * P, rng);
    AlignedVector b(std::size_t(C * P)), back(std::size_t(C * P));
    blk::to_blocked(x.data(), C, P, b.data());
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < P; ++p) REQUIRE(b.data()[((c / 16) * P + p) * 16 + c % 16] == x[std::size_t(c * P + p)]);
    blk::to_nchw(b.data(), C, P, back.data());
    REQUIRE(std::equal(x.begin(), x.end(), back.data()));
  }
}

TEST_CASE("blocked 1x1 and Winograd kernels equal conv2d_reference, with every epilogue and thread count") {
  if (detect_isa() != Isa::AVX512) return;
  std::mt19937 rng(43);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int saved = num_threads();
  for (int trial = 0; trial < 48; ++trial) {
    const int kind = trial % 3;  // 0: 1x1 stride 1, 1: 1x1 stride 2, 2: 3x3 Winograd
    Conv2dOptions o;
    // Channel counts in blocks of 16, output counts off the 32-channel panels half the time.
    o.in_channels = 16 * r(1, 6), o.out_channels = 16 * r(1, 7);
    if (kind == 2) o.kernel(3), o.pad_h = o.pad_w = 1;
    else o.kernel(1), o.stride(kind == 1 ? 2 : 1);
    o.bias = r(0, 1);
    // Maps with partial last tiles (and, for Winograd, partial 4x4 tiles at the edges).
    const int64_t h = kind == 1 ? r(2, 9) : r(1, 19), w = kind == 1 ? r(27, 40) : r(14, 40);
    const int64_t oh = o.out_h(h), ow = o.out_w(w), P = oh * ow;
    std::vector<float> weight(std::size_t(o.out_channels * o.in_channels * o.kh * o.kw)), bias(std::size_t(o.out_channels));
    test::fill_random(weight.data(), int64_t(weight.size()), rng, 0.2f);
    test::fill_random(bias.data(), int64_t(bias.size()), rng);
    const Activation acts[] = {Activation::None, Activation::ReLU, Activation::LeakyReLU, Activation::Sigmoid};
    const Activation act = acts[trial % 4];
    const int residual = r(0, 2);  // 0 none, 1 a separate tensor, 2 the output's own buffer
    const bool nchw_out = kind != 2 && trial % 2 == 1;  // 1x1 only: blocked input, NCHW output
    Tensor x(Shape{1, o.in_channels, h, w}), res(Shape{1, o.out_channels, oh, ow}), ref(res.shape());
    test::fill_random(x.data(), x.numel(), rng);
    test::fill_random(res.data(), res.numel(), rng);
    Epilogue post{o.bias ? bias.data() : nullptr, act, 0.1f};
    if (residual) post.residual = res.data(), post.out_base = ref.data();
    conv2d_reference(x.view(), weight.data(), nullptr, o, ref.view(), post);

    const AlignedVector xb = blocked_copy(x.data(), o.in_channels, h * w);
    const AlignedVector rb = blocked_copy(res.data(), o.out_channels, P);
    const AlignedVector panels = blk::pack_panels(o.out_channels, o.in_channels, weight.data());
    const blk::WinogradWeights U = kind == 2 ? blk::transform_weights(weight.data(), o.out_channels, o.in_channels)
                                             : blk::WinogradWeights{};
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // The residual in the output's layout.
      const float* res_in = nchw_out ? res.data() : rb.data();
      AlignedVector y(std::size_t(o.out_channels * P)), residual_copy(std::size_t(o.out_channels * P));
      std::copy(res_in, res_in + o.out_channels * P, residual_copy.data());
      if (residual == 2) std::copy(res_in, res_in + o.out_channels * P, y.data());
      Epilogue ep{o.bias ? bias.data() : nullptr, act, 0.1f};
      if (residual) ep.residual = residual == 2 ? y.data() : residual_copy.data(), ep.out_base = y.data();
      if (kind == 2)
        blk::winograd_f4(U, xb.data(), blk::WinogradGeometry{o.in_channels, o.out_channels, h, w}, y.data(), ep);
      else
        blk::pointwise(panels, xb.data(),
                       blk::PointwiseGeometry{o.in_channels, o.out_channels, h, w, o.stride_h, oh, ow, nchw_out}, y.data(), ep);
      AlignedVector nchw(std::size_t(o.out_channels * P));
      if (nchw_out) std::copy(y.data(), y.data() + o.out_channels * P, nchw.data());
      else blk::to_nchw(y.data(), o.out_channels, P, nchw.data());
      outs.emplace_back(nchw.data(), nchw.data() + o.out_channels * P);
    }
    INFO("trial " << trial << " kind " << kind << " " << o.in_channels << "->" << o.out_channels << " in " << h << "x"
                  << w << " residual " << residual << " act " << activation_name(act) << " nchw_out " << nchw_out);
    CHECK(test::rel_error(outs[0].data(), ref.data(), ref.numel()) < (kind == 2 ? 1e-4 : 1e-5));
    CHECK(outs[0] == outs[1]);
  }
  set_num_threads(saved);
}
