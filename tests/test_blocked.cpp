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
    const Activation acts[] = {Activation::None, Activation::ReLU, Activation::LeakyReLU, Activation::Sigmoid,
                               Activation::ReLU6};
    const Activation act = acts[trial % 5];
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

TEST_CASE("blocked 1x1 with weights past 512 KiB (items by panel) equals conv2d_reference") {
  if (detect_isa() != Isa::AVX512) return;
  std::mt19937 rng(45);
  Conv2dOptions o;
  o.in_channels = 256, o.out_channels = 560, o.kernel(1);  // 560 KiB of weights, a half last panel
  const int64_t h = 5, w = 17, P = h * w;
  std::vector<float> weight(std::size_t(o.out_channels * o.in_channels)), bias(std::size_t(o.out_channels));
  test::fill_random(weight.data(), int64_t(weight.size()), rng, 0.1f);
  test::fill_random(bias.data(), int64_t(bias.size()), rng);
  Tensor x(Shape{1, o.in_channels, h, w}), ref(Shape{1, o.out_channels, h, w});
  test::fill_random(x.data(), x.numel(), rng);
  conv2d_reference(x.view(), weight.data(), nullptr, o, ref.view(), Epilogue{bias.data(), Activation::ReLU});
  const AlignedVector xb = blocked_copy(x.data(), o.in_channels, P);
  const AlignedVector panels = blk::pack_panels(o.out_channels, o.in_channels, weight.data());
  AlignedVector y(std::size_t(o.out_channels * P)), nchw(std::size_t(o.out_channels * P));
  blk::pointwise(panels, xb.data(), blk::PointwiseGeometry{o.in_channels, o.out_channels, h, w, 1, h, w}, y.data(),
                 Epilogue{bias.data(), Activation::ReLU});
  blk::to_nchw(y.data(), o.out_channels, P, nchw.data());
  CHECK(test::rel_error(nchw.data(), ref.data(), ref.numel()) < 1e-5);
}

TEST_CASE("the direct stride-2 kernel reads and writes either layout, equal to conv2d_reference") {
  if (detect_isa() != Isa::AVX512) return;
  // Few-tap shapes would take the row kernel (tested in test_depthwise.cpp); this tests the direct one.
  struct RowconvOff {
    RowconvOff() { set_rowconv(false); }
    ~RowconvOff() { set_rowconv(true); }
  } rowconv_off;
  std::mt19937 rng(47);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int border_in_kernel = 0, padded_copy = 0;  // blocked inputs by how their padding was applied
  for (int trial = 0; trial < 24; ++trial) {
    const bool blocked_in = trial % 2 == 1, blocked_out = trial % 4 >= 2;
    Conv2dOptions o;
    // Channel blocks that straddle the kernel's input-channel steps (256 / taps channels).
    o.in_channels = blocked_in ? 16 * r(1, 4) : r(1, 9), o.out_channels = 16 * r(1, 5);
    o.kh = o.kw = trial % 3 == 0 ? 7 : 3, o.stride(2), o.pad_h = o.pad_w = o.kh / 2, o.bias = true;  // stem, 3x3/2
    // Output rows of 7 to 30 pixels (two-row tiles below 14); inputs of at least 56x56 pixels, where
    // Conv2d takes the blocked paths.
    const int64_t ow = r(7, 30), oh = std::max<int64_t>(r(2, 9), (3136 / (2 * ow - 1) + 3) / 2);
    const int64_t h = 2 * (oh - 1) + o.kh - 2 * o.pad_h + r(0, 1), w = 2 * (ow - 1) + o.kw - 2 * o.pad_w + r(0, 1);
    Conv2d conv("c", o);
    test::fill_params(conv, rng, 0.2f);
    const bool residual = trial % 5 == 0;
    if (residual) conv.set_residual();
    conv.set_activation(Activation::ReLU, 0.f);
    conv.prepare();
    Tensor x(Shape{1, o.in_channels, h, w});
    test::fill_random(x.data(), x.numel(), rng);
    const Shape out{1, o.out_channels, o.out_h(h), o.out_w(w)};
    REQUIRE(conv.use_direct(x.shape(), out));
    if (blocked_in) ++(conv.direct_pads_itself(x.shape(), out) ? border_in_kernel : padded_copy);
    Tensor res(out), ref(out);
    test::fill_random(res.data(), res.numel(), rng);
    Epilogue post{conv.bias_data(), Activation::ReLU};
    if (residual) post.residual = res.data(), post.out_base = ref.data();
    conv2d_reference(x.view(), conv.weight().values.data(), nullptr, o, ref.view(), post);
    // Inputs and residual in the layouts under test; the result back to NCHW.
    AlignedVector xin(std::size_t(x.numel())), rin(std::size_t(res.numel())), y(std::size_t(ref.numel()));
    if (blocked_in) blk::to_blocked(x.data(), o.in_channels, h * w, xin.data());
    else std::copy(x.data(), x.data() + x.numel(), xin.data());
    if (blocked_out) blk::to_blocked(res.data(), o.out_channels, out.plane(), rin.data());
    else std::copy(res.data(), res.data() + res.numel(), rin.data());
    std::vector<float> ws(std::size_t(conv.workspace_floats({x.shape(), out}) + 1));
    std::vector<ConstTensorView> ins{ConstTensorView{x.shape(), xin.data(), blocked_in}};
    if (residual) ins.push_back(ConstTensorView{out, rin.data(), blocked_out});
    REQUIRE((!blocked_in || conv.runs_blocked({x.shape()})));
    REQUIRE((blocked_in || !blocked_out || residual || conv.writes_blocked_from_nchw({x.shape()})));
    if (!blocked_in && blocked_out && residual) continue;  // not a combination the graph makes
    conv.forward(ins, TensorView{out, y.data(), blocked_out}, ws.data());
    AlignedVector got(std::size_t(ref.numel()));
    if (blocked_out) blk::to_nchw(y.data(), o.out_channels, out.plane(), got.data());
    else std::copy(y.data(), y.data() + ref.numel(), got.data());
    INFO("trial " << trial << " " << conv.describe() << " in " << x.shape().str() << " blocked in/out " << blocked_in
                  << blocked_out);
    CHECK(test::rel_error(got.data(), ref.data(), ref.numel()) < 1e-5);
  }
  CHECK(border_in_kernel >= 2);  // 3x3 with one row and column of padding, applied by the tile
  CHECK(padded_copy >= 2);       // the stem's 7x7 with three, on a padded copy
}

TEST_CASE("blocked max pooling equals the direct definition") {
  if (detect_isa() != Isa::AVX512) return;
  std::mt19937 rng(49);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 30; ++trial) {
    Pool2dOptions o;
    o.kh = r(1, 4), o.kw = r(1, 4), o.stride_h = r(1, 3), o.stride_w = r(1, 3), o.ceil_mode = r(0, 1);
    o.pad_h = r(0, o.kh / 2), o.pad_w = r(0, o.kw / 2);
    Pool2d p("p", PoolKind::Max, o);
    Tensor x(Shape{r(1, 2), 16 * r(1, 3), r(o.kh, 20), r(o.kw, 20)});
    test::fill_random(x.data(), x.numel(), rng);
    if (trial % 4 == 0) x[r(0, int(x.numel()) - 1)] = std::nanf("");
    Tensor want(p.output_shape({x.shape()}));
    p.forward_direct(x.view(), want.view());
    REQUIRE(p.runs_blocked({x.shape()}));
    const Shape& s = x.shape();
    AlignedVector xb(std::size_t(x.numel())), yb(std::size_t(want.numel())), got(std::size_t(want.numel()));
    for (int64_t n = 0; n < s.n; ++n) blk::to_blocked(x.data() + n * s.sample(), s.c, s.plane(), xb.data() + n * s.sample());
    p.forward({ConstTensorView{s, xb.data(), true}}, TensorView{want.shape(), yb.data(), true}, nullptr);
    const Shape& os = want.shape();
    for (int64_t n = 0; n < os.n; ++n) blk::to_nchw(yb.data() + n * os.sample(), os.c, os.plane(), got.data() + n * os.sample());
    INFO("trial " << trial << " " << p.describe() << " input " << s.str());
    for (int64_t i = 0; i < want.numel(); ++i)
      REQUIRE((got.data()[i] == want[i] || (std::isnan(got.data()[i]) && std::isnan(want[i]))));
  }
}

TEST_CASE("a graph with channel-blocked stages gives the all-NCHW graph's output, for any batch and thread count") {
  if (detect_isa() != Isa::AVX512) return;
  std::mt19937 rng(51);
  for (const char* arch : {"resnet18", "resnet50"}) {
    ModelConfig c;
    c.arch = arch, c.width = 0.25, c.num_classes = 10;  // 16-512 channels: the blocked rules hold at 56x56
    Graph g = build_model(c);
    g.init_random(3);
    Tensor x(Shape{2, 3, 224, 224});
    test::fill_random(x.data(), x.numel(), rng);
    const MemoryPlan& plan = g.plan(x.shape());
    const int64_t blocked = std::count(plan.blocked.begin(), plan.blocked.end(), 1);
    CHECK(blocked > 0);
    std::vector<Tensor> outs;
    for (int threads : {1, 2}) {
      test::ThreadScope scope(threads);
      outs.push_back(g.forward_single(x.view()));
    }
    set_blocked(false);
    Tensor nchw = g.forward_single(x.view());
    set_blocked(true);
    INFO(arch << ": " << blocked << " blocked tensors, " << plan.conversions() << " conversions");
    CHECK(test::rel_error(outs[0].data(), nchw.data(), nchw.numel()) < 1e-5);
    CHECK(std::equal(outs[0].data(), outs[0].data() + outs[0].numel(), outs[1].data()));
  }
}

TEST_CASE("changing a kernel setting after a forward plans the graph again") {
  if (detect_isa() != Isa::AVX512) return;
  std::mt19937 rng(53);
  ModelConfig c;
  c.arch = "resnet50", c.num_classes = 10;  // layer2.0.conv2's padded input: the largest copy
  Graph g = build_model(c);
  g.init_random(5);
  Tensor x(Shape{1, 3, 224, 224});
  test::fill_random(x.data(), x.numel(), rng);
  const Tensor direct = g.forward_single(x.view());
  const int64_t direct_workspace = g.plan(x.shape()).workspace_floats;
  // Without the direct kernel the 3x3/2 layers unfold a zero-padded copy of their input: the plan
  // made with the kernel on has no room for it (it pads in the tile) and must not be reused.
  set_direct(false);
  const Tensor gemm = g.forward_single(x.view());
  const int64_t gemm_workspace = g.plan(x.shape()).workspace_floats;
  set_winograd(false);
  const Tensor plain = g.forward_single(x.view());
  set_winograd(true);
  set_direct(true);
  CHECK(gemm_workspace > direct_workspace);
  CHECK(g.plan(x.shape()).settings == MemoryPlan::Settings::current());
  CHECK(test::rel_error(gemm.data(), direct.data(), direct.numel()) < 1e-5);
  CHECK(test::rel_error(plain.data(), direct.data(), direct.numel()) < 1e-3);
  CHECK(g.plan(x.shape()).workspace_floats == direct_workspace);
}
