// Int8 convolution kernels (kernels/int8.hpp) against their reference, bit for bit.
#include <doctest/doctest.h>

#include "cnn/kernels/int8.hpp"
#include <set>

#include "test_util.hpp"

using namespace cnn;
namespace q8 = cnn::kernels::int8;

namespace {
// Every int8 path this CPU runs: the portable one and, where the CPU has it, VNNI.
struct Int8Path {
  const char* name;
  Isa isa;
};
std::vector<Int8Path> int8_paths() {
  std::vector<Int8Path> v{{"generic", Isa::Generic}};
  if (q8::cpu_has_vnni()) v.push_back({"avx512-vnni", Isa::AVX512});
  return v;
}
}  // namespace

TEST_CASE("int8 convolution kernels equal the reference bit for bit on random shapes") {
  std::mt19937 rng(811);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const Activation acts[] = {Activation::None, Activation::ReLU, Activation::ReLU6};
  int with_residual = 0, ragged_channels = 0, many_blocks = 0, folded_runs = 0, float_outputs = 0;
  for (int trial = 0; trial < 80; ++trial) {
    q8::Geometry g;
    g.c = trial % 4 == 0 ? r(1, 7) : r(1, 80);
    g.oc = trial % 5 == 0 ? r(65, 150) : r(1, 70);
    g.kh = r(1, 4), g.kw = trial % 9 == 0 ? 7 : r(1, 4);
    g.stride_h = r(1, 2), g.stride_w = trial % 6 == 0 ? 1 : g.stride_h;
    g.pad_h = r(0, g.kh / 2 + 1), g.pad_w = r(0, g.kw / 2 + 1);
    g.h = r(g.kh, 14), g.w = r(g.kw, 20);
    g.oh = (g.h + 2 * g.pad_h - g.kh) / g.stride_h + 1;
    g.ow = (g.w + 2 * g.pad_w - g.kw) / g.stride_w + 1;
    ragged_channels += g.c % 4 != 0;
    many_blocks += g.oc > 64;

    std::vector<uint8_t> x(std::size_t(g.h * g.w * g.c + q8::kSlack)), res(std::size_t(g.oh * g.ow * g.oc));
    std::vector<int8_t> w(std::size_t(g.oc * g.c * g.taps()));
    for (auto& v : x) v = uint8_t(r(0, 255));
    for (auto& v : res) v = uint8_t(r(0, 255));
    for (auto& v : w) v = int8_t(r(-127, 127));
    const int32_t in_zero = trial % 3 == 0 ? 0 : r(0, 255);
    const q8::PackedWeights pw = q8::pack_weights(w.data(), g);
    const int64_t P = g.padded_oc();
    std::vector<float> scale(static_cast<std::size_t>(P)), bias(static_cast<std::size_t>(P));
    std::vector<int32_t> comp(static_cast<std::size_t>(P));
    // Scales that put the sums' spread over about the output's range, so rounding and clamping both occur.
    const float spread = 127.f * 128.f * std::sqrt(float(g.c * g.taps()));
    for (int64_t o = 0; o < P; ++o) {
      scale[std::size_t(o)] = std::uniform_real_distribution<float>(0.2f, 3.f)(rng) / spread;
      bias[std::size_t(o)] = std::uniform_real_distribution<float>(-0.5f, 0.5f)(rng);
      comp[std::size_t(o)] = in_zero * pw.sums[std::size_t(o)];
    }
    q8::Requant rq;
    rq.scale = scale.data(), rq.bias = bias.data(), rq.comp = comp.data();
    rq.act = acts[trial % 3];
    rq.out_inv_scale = std::uniform_real_distribution<float>(60.f, 200.f)(rng);
    rq.out_zero = float(trial % 2 ? 0 : r(0, 128));
    if (rq.act == Activation::ReLU6) rq.out_inv_scale = 40.f, rq.out_zero = 0.f;  // 0..6 over the u8 range
    if (r(0, 2) == 0) {
      rq.residual = res.data(), rq.res_scale = 1.f / 200, rq.res_zero = r(0, 255);
      ++with_residual;
    }
    std::vector<uint8_t> zeros(std::size_t(g.groups() * 4), uint8_t(in_zero));

    // Some layers write float (a model's last layer): compared as bytes too.
    const bool to_float = trial % 7 == 3;
    std::vector<float> ref_float(std::size_t(g.oh * g.ow * g.oc)), out_float(ref_float.size());
    std::vector<uint8_t> ref(std::size_t(g.oh * g.ow * g.oc));
    if (to_float) rq.out_float = ref_float.data(), ++float_outputs;
    q8::conv_reference(x.data(), w.data(), g, in_zero, rq, ref.data());
    if (to_float) rq.out_float = out_float.data();
    const int distinct = to_float ? int(std::set<float>(ref_float.begin(), ref_float.end()).size())
                                  : int(std::set<uint8_t>(ref.begin(), ref.end()).size());
    CHECK(distinct > std::min<int64_t>(8, int64_t(ref.size()) / 4));  // the test exercises real values
    for (const Int8Path& path : int8_paths())
      for (int threads : {1, 2}) {
        test::IsaScope scope(path.isa);
        test::ThreadScope ts(threads);
        std::vector<uint8_t> y(ref.size(), 0xAB);
        q8::conv(x.data(), pw, g, zeros.data(), rq, y.data());
        int wrong = 0;
        if (to_float) {  // bit for bit
          for (std::size_t i = 0; i < y.size(); ++i) wrong += std::memcmp(&out_float[i], &ref_float[i], 4) != 0;
          std::fill(out_float.begin(), out_float.end(), -1.f);
        } else {
          for (std::size_t i = 0; i < y.size(); ++i) wrong += y[i] != ref[i];
        }
        INFO("trial ", trial, " path ", path.name, " threads ", threads, " c ", g.c, " oc ", g.oc, " kernel ", g.kh, "x",
             g.kw, " stride ", g.stride_h, "x", g.stride_w, " pad ", g.pad_h, "x", g.pad_w, " in ", g.h, "x", g.w);
        CHECK(wrong == 0);
        if (!q8::folds_columns(g)) continue;
        // First layers: kernel columns folded into channels.
        const q8::Geometry fg = q8::columns_folded(g);
        const std::vector<int8_t> fw = q8::fold_weight_columns(w.data(), g);
        const q8::PackedWeights fpw = q8::pack_weights(fw.data(), fg);
        std::vector<uint8_t> folded(std::size_t(fg.h * fg.w * fg.c + q8::kSlack)), fzeros(std::size_t(fg.groups() * 4), uint8_t(in_zero));
        q8::fold_image_columns(x.data(), g, uint8_t(in_zero), folded.data());
        std::fill(y.begin(), y.end(), 0xAB);
        q8::conv(folded.data(), fpw, fg, fzeros.data(), rq, y.data());
        wrong = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
          wrong += to_float ? std::memcmp(&out_float[i], &ref_float[i], 4) != 0 : y[i] != ref[i];
        ++folded_runs;
        CHECK(wrong == 0);
      }
  }
  CHECK(with_residual > 10);
  CHECK(ragged_channels > 10);
  CHECK(many_blocks > 10);
  CHECK(folded_runs > 10);
  CHECK(float_outputs > 5);
  if (!q8::cpu_has_vnni()) MESSAGE("this CPU has no AVX-512 VNNI: only the portable int8 path was compared");
}

TEST_CASE("requantize rounds half to even and clamps to the u8 range") {
  const float one = 1.f, zero_bias = 0.f;
  const int32_t no_comp = 0;
  q8::Requant rq;
  rq.scale = &one, rq.bias = &zero_bias, rq.comp = &no_comp;
  rq.out_inv_scale = 0.5f;
  CHECK(q8::requantize(5, 0, rq, nullptr) == 2);  // 2.5 -> 2
  CHECK(q8::requantize(7, 0, rq, nullptr) == 4);  // 3.5 -> 4
  CHECK(q8::requantize(-9, 0, rq, nullptr) == 0);
  CHECK(q8::requantize(1 << 20, 0, rq, nullptr) == 255);
  rq.act = Activation::ReLU6;
  CHECK(q8::requantize(100, 0, rq, nullptr) == 3);  // min(100, 6) * 0.5
}
