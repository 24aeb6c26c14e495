// Depth-wise convolution kernels (kernels/depthwise.hpp) against conv2d_reference.
#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace cnn;

TEST_CASE("depth-wise kernels equal conv2d_reference on random shapes, epilogues, ISAs and thread counts") {
  std::mt19937 rng(23);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const Activation acts[] = {Activation::None, Activation::ReLU, Activation::ReLU6, Activation::LeakyReLU,
                             Activation::Sigmoid};
  int vectorised = 0, strided = 0, ragged = 0, blocks_of_four = 0;
  for (int trial = 0; trial < 120; ++trial) {
    Conv2dOptions o;
    o.in_channels = o.out_channels = o.groups = r(1, 5);
    o.kh = r(1, 5), o.kw = trial % 10 == 0 ? 7 : r(1, 5);
    const int s = trial % 7 == 6 ? 3 : r(1, 2);  // stride 3 and dilation take the portable loop
    o.stride_h = o.stride_w = s;
    o.dilation_h = o.dilation_w = trial % 9 == 8 ? 2 : 1;
    o.pad_h = r(0, std::min(3, o.kh)), o.pad_w = r(0, std::min(3, o.kw));
    // Narrow rows (edge strips only), and rows wide enough for interior strips, four at a time.
    const int64_t wide = trial % 3 == 0 ? r(1, 17) : trial % 3 == 1 ? r(1, 70) : r(80, 200);
    const int64_t h = r(1, 12) + o.dilation_h * (o.kh - 1), w = wide + o.dilation_w * (o.kw - 1);
    const int64_t n = r(1, 2);
    const Shape xs{n, o.in_channels, h, w}, ys{n, o.out_channels, o.out_h(h), o.out_w(w)};
    Tensor x(xs), res(ys);
    std::vector<float> weight(std::size_t(o.out_channels * o.kh * o.kw)), bias(std::size_t(o.out_channels));
    test::fill_random(x.data(), x.numel(), rng);
    test::fill_random(res.data(), res.numel(), rng);
    test::fill_random(weight.data(), int64_t(weight.size()), rng);
    test::fill_random(bias.data(), int64_t(bias.size()), rng);
    const kernels::depthwise::Geometry g{h, w, ys.h, ys.w, o.kh, o.kw, o.stride_h, o.stride_w, o.pad_h, o.pad_w,
                                         o.dilation_h, o.dilation_w};
    vectorised += g.vectorised();
    strided += g.vectorised() && s == 2;
    ragged += g.vectorised() && ys.w % 16 != 0 && ys.w > 16;
    blocks_of_four += g.vectorised() && ys.w >= 6 * 16;

    Epilogue ep;
    ep.bias = r(0, 1) ? bias.data() : nullptr;
    ep.act = acts[trial % 5];
    ep.slope = 0.1f;
    const bool residual = r(0, 1);
    Tensor ref(ys);
    {
      Epilogue e = ep;
      if (residual) e.residual = res.data(), e.out_base = ref.data();
      e.bias = nullptr;  // conv2d_reference adds its own bias first
      conv2d_reference(x.view(), weight.data(), ep.bias, o, ref.view(), e);
    }
    Tensor first(ys);
    for (Isa isa : test::available_isas())
      for (int threads : {1, 2}) {
        test::IsaScope scope(isa);
        test::ThreadScope ts(threads);
        Tensor y(ys);
        Epilogue e = ep;
        if (residual) e.residual = res.data(), e.out_base = y.data();
        kernels::depthwise::run(x.data(), weight.data(), g, n * o.out_channels, o.out_channels, y.data(), e);
        INFO(isa_name(isa) << " threads " << threads << " trial " << trial << " k " << o.kh << "x" << o.kw << " s" << s
                           << " p" << o.pad_h << "," << o.pad_w << " d" << o.dilation_h << " in " << xs.str() << " "
                           << activation_name(ep.act) << (residual ? " +residual" : ""));
        CHECK(test::rel_error(y.data(), ref.data(), y.numel()) < 1e-5);
        if (threads == 1) first = Tensor::from(ys, y.data());
        else CHECK(std::equal(y.data(), y.data() + y.numel(), first.data()));  // any thread count, same bits
      }
  }
  // The random shapes did exercise the vector paths, strided and with ragged row ends.
  CHECK(vectorised > 60);
  CHECK(strided > 20);
  CHECK(ragged > 10);
  CHECK(blocks_of_four >= 8);
}

TEST_CASE("a residual written over in place: the depth-wise output may share the residual's buffer") {
  std::mt19937 rng(5);
  for (Isa isa : test::available_isas()) {
    test::IsaScope scope(isa);
    const kernels::depthwise::Geometry g{9, 37, 9, 37, 3, 3, 1, 1, 1, 1, 1, 1};
    Tensor x(Shape{1, 3, 9, 37}), res(Shape{1, 3, 9, 37});
    std::vector<float> w(27);
    test::fill_random(x.data(), x.numel(), rng);
    test::fill_random(res.data(), res.numel(), rng);
    test::fill_random(w.data(), 27, rng);
    Tensor apart(res.shape()), inplace = Tensor::from(res.shape(), res.data());
    Epilogue e;
    e.residual = res.data(), e.out_base = apart.data();
    kernels::depthwise::run(x.data(), w.data(), g, 3, 3, apart.data(), e);
    e.residual = inplace.data(), e.out_base = inplace.data();
    kernels::depthwise::run(x.data(), w.data(), g, 3, 3, inplace.data(), e);
    CHECK(std::equal(apart.data(), apart.data() + apart.numel(), inplace.data()));
  }
}

TEST_CASE("the row kernel (few input taps) equals conv2d_reference, with every epilogue and thread count") {
  if (detect_isa() != Isa::AVX512) return;  // AVX-512 only; other ISAs keep the GEMM path
  std::mt19937 rng(31);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const Activation acts[] = {Activation::None, Activation::ReLU, Activation::ReLU6, Activation::LeakyReLU,
                             Activation::Sigmoid};
  int taken = 0, edges_only = 0, interior = 0;
  for (int trial = 0; trial < 60; ++trial) {
    Conv2dOptions o;
    o.in_channels = r(1, 3);
    o.kh = r(1, 3), o.kw = r(1, 3);
    o.out_channels = trial % 4 == 0 ? r(1, 40) : 16 * r(1, 2);  // whole blocks of 16 and ragged ones
    o.stride_h = o.stride_w = r(1, 2);
    o.pad_h = r(0, o.kh - 1), o.pad_w = r(0, o.kw - 1);
    o.bias = r(0, 1);
    const int64_t h = r(1, 9) + o.kh, w = (trial % 2 ? r(16, 40) : r(60, 150)) * o.stride_w + o.kw;
    Graph g;
    g.add_output(g.add<Conv2d>({Graph::kInput}, "c", o), "y");
    g.init_random(uint32_t(trial));
    auto* conv = static_cast<Conv2d*>(g.layer(1));
    conv->set_activation(acts[trial % 5], 0.1f);
    const Shape xs{r(1, 2), o.in_channels, h, w};
    const Shape ys{xs.n, o.out_channels, o.out_h(h), o.out_w(w)};
    if (!conv->use_rowconv(xs, ys)) continue;
    ++taken;
    (ys.w >= 16 * 6 ? interior : edges_only)++;
    Tensor x(xs);
    test::fill_random(x.data(), x.numel(), rng);
    Tensor ref(ys);
    Epilogue post = conv->epilogue();
    post.bias = nullptr;  // conv2d_reference adds the bias itself
    conv2d_reference(x.view(), conv->weight().values.data(), conv->bias_data(), o, ref.view(), post);
    Tensor first(ys);
    for (int threads : {1, 2}) {
      test::ThreadScope ts(threads);
      Tensor y = g.forward_single(x.view());
      INFO("trial " << trial << " " << conv->describe() << " in " << xs.str() << " threads " << threads);
      CHECK(test::rel_error(y.data(), ref.data(), y.numel()) < 1e-5);
      if (threads == 1) first = std::move(y);
      else CHECK(std::equal(y.data(), y.data() + y.numel(), first.data()));
    }
  }
  CHECK(taken > 40);
  CHECK(interior > 10);
  CHECK(edges_only > 10);
}
