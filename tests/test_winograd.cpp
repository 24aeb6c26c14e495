// Winograd F(4x4,3x3) against the direct definition, on every ISA this CPU has, on random shapes
// (partial tiles, padding 0-2, channel counts beyond one GEMM K block, several tile-row blocks).
#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace cnn;

TEST_CASE("Winograd 3x3 convolution (4x4 and 2x2 tiles) equals conv2d_reference within 1e-3 on every ISA") {
  std::mt19937 rng(5);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (Isa isa : test::available_isas())
  for (int m : {4, 2}) {
    test::IsaScope scope(isa);
    for (int trial = 0; trial < 24; ++trial) {
      const int64_t cin = trial == 0 ? 300 : r(8, 40), cout = trial == 1 ? 70 : r(8, 40);
      const int pad = r(0, 2);
      const int64_t h = trial == 2 ? 61 : r(3, 30), w = trial == 3 ? 75 : r(3, 40);
      Conv2dOptions o{cin, cout};
      o.kernel(3).padding(pad);
      if (h + 2 * pad < 3 || w + 2 * pad < 3) continue;
      const int64_t oh = o.out_h(h), ow = o.out_w(w);
      std::vector<float> weight(std::size_t(cout * cin * 9)), bias(static_cast<std::size_t>(cout));
      test::fill_random(weight.data(), int64_t(weight.size()), rng, 0.2f);
      test::fill_random(bias.data(), cout, rng);
      Tensor x(Shape{1, cin, h, w}), y(Shape{1, cout, oh, ow}), ref(Shape{1, cout, oh, ow});
      test::fill_random(x.data(), x.numel(), rng);
      const Activation acts[] = {Activation::ReLU, Activation::ReLU6, Activation::None};
      const Epilogue ep{bias.data(), acts[trial % 3]};
      const auto U = kernels::winograd::transform_weights(weight.data(), cout, cin, m);
      const kernels::winograd::Geometry g(m, cin, h, w, pad, pad, cout, oh, ow);
      for (int threads : {1, 2}) {
        test::ThreadScope t(threads);
        kernels::winograd::conv3x3(U, x.data(), g, y.data(), ep);
        conv2d_reference(x.view(), weight.data(), nullptr, o, ref.view(), ep);  // ep adds the bias
        INFO(isa_name(isa) << " F(" << m << "x" << m << ") cin=" << cin << " cout=" << cout << " " << h << "x" << w << " pad=" << pad
                           << " threads=" << threads);
        CHECK(test::rel_error(y.data(), ref.data(), y.numel()) < 1e-3);
      }
    }
  }
}

TEST_CASE("Winograd results do not depend on the thread count") {
  std::mt19937 rng(9);
  // Maps of several blocks (whole blocks per thread, then the blocks left over split by output
  // channels) and one-block maps (14x14, 7x7), whose input transform the threads share.
  struct Case {
    int m;
    int64_t h, w;
  };
  for (const Case c : {Case{4, 29, 31}, Case{4, 56, 56}, Case{4, 14, 14}, Case{2, 7, 7}}) {
    const int64_t cin = 64, cout = 48;
    std::vector<float> weight(std::size_t(cout * cin * 9));
    test::fill_random(weight.data(), int64_t(weight.size()), rng, 0.2f);
    Tensor x(Shape{1, cin, c.h, c.w});
    test::fill_random(x.data(), x.numel(), rng);
    const auto U = kernels::winograd::transform_weights(weight.data(), cout, cin, c.m);
    const kernels::winograd::Geometry g(c.m, cin, c.h, c.w, 1, 1, cout, c.h, c.w);
    std::vector<Tensor> ys;
    for (int threads : {1, 2, 3}) {
      test::ThreadScope t(threads);
      ys.emplace_back(Shape{1, cout, c.h, c.w});
      kernels::winograd::conv3x3(U, x.data(), g, ys.back().data(), {});
    }
    INFO("F(" << c.m << "x" << c.m << ") on " << c.h << "x" << c.w << ", " << g.nblocks << " block(s)");
    CHECK(std::memcmp(ys[0].data(), ys[1].data(), ys[0].bytes()) == 0);
    CHECK(std::memcmp(ys[0].data(), ys[2].data(), ys[0].bytes()) == 0);
  }
}
