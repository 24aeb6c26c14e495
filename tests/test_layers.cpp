// Every op against PyTorch's output on awkward shapes (tests/golden/layers.safetensors, made by
// tools/make_golden.py), and the fast convolution paths against conv2d_reference on random shapes.
#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace cnn;

namespace {

Tensor tensor_of(const SafeTensors& st, const std::string& name) {
  std::vector<float> v;
  st.read(name, v);
  auto d = st.dims(name);
  while (d.size() < 4) d.push_back(1);
  return Tensor::from(Shape{d[0], d[1], d[2], d[3]}, v.data());
}

std::vector<int> pair(const json::Value& v) {
  if (v.is_array()) return {int(v.array[0].number), int(v.array[1].number)};
  return {int(v.number), int(v.number)};
}

// Builds the op a golden case describes, with its parameters under the name "op".
LayerPtr make_layer(const json::Value& m) {
  const std::string op = m.find("op")->string;
  auto num = [&](const char* k) { return m.find(k)->number; };
  auto flag = [&](const char* k) { return m.find(k)->boolean; };
  if (op == "conv2d") {
    Conv2dOptions o;
    o.in_channels = int64_t(num("in_channels"));
    o.out_channels = int64_t(num("out_channels"));
    auto k = pair(*m.find("kernel_size")), s = pair(*m.find("stride")), p = pair(*m.find("padding")),
         d = pair(*m.find("dilation"));
    o.kh = k[0], o.kw = k[1], o.stride_h = s[0], o.stride_w = s[1], o.pad_h = p[0], o.pad_w = p[1];
    o.dilation_h = d[0], o.dilation_w = d[1], o.groups = int(num("groups")), o.bias = flag("bias");
    return std::make_unique<Conv2d>("op", o);
  }
  if (op == "maxpool2d" || op == "avgpool2d") {
    Pool2dOptions o;
    auto k = pair(*m.find("kernel_size")), s = pair(*m.find("stride")), p = pair(*m.find("padding"));
    o.kh = k[0], o.kw = k[1], o.stride_h = s[0], o.stride_w = s[1], o.pad_h = p[0], o.pad_w = p[1];
    o.dilation_h = o.dilation_w = int(num("dilation"));
    o.ceil_mode = flag("ceil_mode");
    o.count_include_pad = flag("count_include_pad");
    return std::make_unique<Pool2d>("op", op == "maxpool2d" ? PoolKind::Max : PoolKind::Avg, o);
  }
  if (op == "adaptiveavgpool2d") {
    auto s = pair(*m.find("output_size"));
    return std::make_unique<AdaptiveAvgPool2d>("op", s[0], s[1]);
  }
  if (op == "linear") return std::make_unique<Linear>("op", int64_t(num("in_features")), int64_t(num("out_features")));
  if (op == "batchnorm2d") return std::make_unique<BatchNorm2d>("op", int64_t(num("num_features")), num("eps"));
  if (op == "relu") return std::make_unique<ActivationLayer>("op", Activation::ReLU);
  if (op == "leakyrelu") return std::make_unique<ActivationLayer>("op", Activation::LeakyReLU, float(num("negative_slope")));
  if (op == "sigmoid") return std::make_unique<ActivationLayer>("op", Activation::Sigmoid);
  if (op == "softmax") return std::make_unique<Softmax>("op");
  if (op == "add") return std::make_unique<Add>("op");
  FAIL("unknown op " << op);
  return nullptr;
}

// Maps the golden file's short names (C.w, C.b, C.mean, C.var) onto state_dict keys of layer "op".
class CaseWeights : public WeightSource {
 public:
  CaseWeights(const SafeTensors& st, std::string c) : st_(st), case_(std::move(c)) {}
  std::string origin() const override { return st_.origin(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (auto& [k, v] : map_)
      if (st_.contains(case_ + "." + v)) n.push_back(k);
    return n;
  }
  bool contains(const std::string& n) const override {
    return map_.count(n) && st_.contains(case_ + "." + map_.at(n));
  }
  std::vector<int64_t> dims(const std::string& n) const override { return st_.dims(case_ + "." + map_.at(n)); }
  void read(const std::string& n, std::vector<float>& out) const override { st_.read(case_ + "." + map_.at(n), out); }

 private:
  const SafeTensors& st_;
  std::string case_;
  std::map<std::string, std::string> map_{{"op.weight", "w"}, {"op.bias", "b"}, {"op.running_mean", "mean"},
                                          {"op.running_var", "var"}};
};

}  // namespace

TEST_CASE("every op matches PyTorch on the golden cases") {
  const SafeTensors st = SafeTensors::open(test::golden("layers.safetensors"));
  REQUIRE(st.metadata().size() >= 30);
  for (const auto& [name, meta_text] : st.metadata()) {
    SUBCASE(name.c_str()) {
      const json::Value meta = json::parse(meta_text);
      Graph g;
      std::vector<int> ins{Graph::kInput};
      Tensor x = tensor_of(st, name + ".x"), x2;
      LayerPtr layer = make_layer(meta);
      if (layer->num_inputs() == 2) {
        // The second operand enters as a constant: add it through a one-node graph of its own.
        x2 = tensor_of(st, name + ".x2");
        Tensor y(x.shape());
        layer->forward({x.view(), x2.view()}, y.view(), nullptr);
        Tensor want = tensor_of(st, name + ".y");
        CHECK(test::rel_error(y.data(), want.data(), y.numel()) < 1e-6);
        continue;
      }
      g.add(std::move(layer), ins);
      g.add_output(1, "y");
      g.load_weights(CaseWeights(st, name));
      for (int threads : {1, 2}) {
        test::ThreadScope t(threads);
        Tensor y = g.forward_single(x.view());
        Tensor want = tensor_of(st, name + ".y");
        INFO(name << " threads=" << threads << " got " << y.shape().str() << " want " << want.shape().str());
        REQUIRE(y.numel() == want.numel());
        CHECK(y.shape().n == want.shape().n);
        CHECK(test::rel_error(y.data(), want.data(), y.numel()) < 1e-5);
      }
    }
  }
}

TEST_CASE("Conv2d fast paths equal conv2d_reference on random shapes, on every ISA") {
  for (Isa isa : test::available_isas()) {
  test::IsaScope scope(isa);
  std::mt19937 rng(7);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 80; ++trial) {
    Conv2dOptions o;
    const int mode = trial % 4;  // 0 general, 1 pointwise, 2 depthwise, 3 grouped
    o.groups = mode == 2 ? r(1, 6) : mode == 3 ? r(2, 3) : 1;
    o.in_channels = o.groups * (mode == 2 ? 1 : r(1, 9));
    o.out_channels = o.groups * (mode == 2 ? 1 : r(1, 12));
    if (mode == 1) o.kernel(1);
    else o.kh = r(1, 5), o.kw = r(1, 5), o.stride_h = r(1, 3), o.stride_w = r(1, 3), o.pad_h = r(0, 2),
         o.pad_w = r(0, 2), o.dilation_h = r(1, 2), o.dilation_w = r(1, 2);
    o.bias = r(0, 1);
    // Every eighth map wide enough that an output row spans more than one 16-lane step.
    const int64_t h = r(1, 19) + o.dilation_h * (o.kh - 1), w = r(1, trial % 8 ? 19 : 90) + o.dilation_w * (o.kw - 1);
    Graph g;
    g.add_output(g.add<Conv2d>({Graph::kInput}, "c", o), "y");
    g.init_random(uint32_t(trial));
    auto* conv = static_cast<Conv2d*>(g.layer(1));
    Tensor x(Shape{r(1, 2), o.in_channels, h, w});
    test::fill_random(x.data(), x.numel(), rng);
    Tensor y = g.forward_single(x.view());
    Tensor ref(y.shape());
    conv2d_reference(x.view(), conv->weight().values.data(), conv->bias_data(), o, ref.view());
    INFO(isa_name(isa) << " trial " << trial << " " << conv->describe() << " in " << x.shape().str());
    CHECK(test::rel_error(y.data(), ref.data(), y.numel()) < (conv->use_winograd(y.shape()) ? 1e-3 : 1e-5));
  }
  }
}

TEST_CASE("the direct stride-2 kernel equals conv2d_reference, with every epilogue and thread count") {
  if (detect_isa() != Isa::AVX512) return;  // the kernel is AVX-512 only; other ISAs keep the GEMM path
  // Few-tap shapes would take the row kernel (tested in test_depthwise.cpp); this tests the direct one.
  struct RowconvOff {
    RowconvOff() { set_rowconv(false); }
    ~RowconvOff() { set_rowconv(true); }
  } rowconv_off;
  std::mt19937 rng(17);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int saved = num_threads();
  int border_in_kernel = 0, padded_copy = 0;  // how the trials' padding was applied
  for (int trial = 0; trial < 40; ++trial) {
    Conv2dOptions o;
    // Channel counts off the 16/32-channel vectors and panels; enough taps for several channel blocks.
    o.in_channels = trial % 5 == 0 ? r(30, 70) : r(1, 12), o.out_channels = r(1, 80);
    o.kh = r(1, 7), o.kw = r(2, 7), o.stride(2), o.pad_h = r(0, o.kh / 2), o.pad_w = r(0, o.kw / 2);
    o.bias = r(0, 1);
    // Output rows of 7 to 45 pixels: two-row tiles below 14, steps back at the end of a row.
    const int64_t ow = r(7, 45), oh = r(2, 12);
    const int64_t h = 2 * (oh - 1) + o.kh - 2 * o.pad_h + r(0, 1), w = 2 * (ow - 1) + o.kw - 2 * o.pad_w + r(0, 1);
    Conv2d conv("c", o);
    test::fill_params(conv, rng, 0.2f);
    const Activation acts[] = {Activation::None, Activation::ReLU, Activation::LeakyReLU, Activation::Sigmoid,
                               Activation::ReLU6};
    const Activation act = acts[trial % 5];
    const bool residual = trial % 3 == 0;
    if (residual) conv.set_residual();
    conv.set_activation(act, 0.1f);
    conv.prepare();
    Tensor x(Shape{r(1, 2), o.in_channels, h, w});
    test::fill_random(x.data(), x.numel(), rng);
    const Shape out{x.shape().n, o.out_channels, o.out_h(h), o.out_w(w)};
    REQUIRE(conv.use_direct(x.shape(), out));
    if (o.pad_h || o.pad_w) ++(conv.direct_pads_itself(x.shape(), out) ? border_in_kernel : padded_copy);
    Tensor res(out), ref(out);
    test::fill_random(res.data(), res.numel(), rng);
    Epilogue post{conv.bias_data(), act, 0.1f};
    if (residual) post.residual = res.data(), post.out_base = ref.data();
    conv2d_reference(x.view(), conv.weight().values.data(), nullptr, o, ref.view(), post);
    std::vector<float> ws(std::size_t(conv.workspace_floats({x.shape(), res.shape()}) + 1));
    std::vector<Tensor> ys;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      ys.emplace_back(out);
      conv.forward({x.view(), res.view()}, ys.back().view(), ws.data());
    }
    INFO("trial " << trial << " " << conv.describe() << " in " << x.shape().str() << " out " << out.str());
    CHECK(test::rel_error(ys[0].data(), ref.data(), ref.numel()) < 1e-5);
    CHECK(std::equal(ys[0].data(), ys[0].data() + ref.numel(), ys[1].data()));
  }
  set_num_threads(saved);
  // Both ways of padding were compared with the reference: the tile's own border (pad 1 where no
  // window reaches the bottom or right edge) and the padded copy.
  CHECK(border_in_kernel >= 3);
  CHECK(padded_copy >= 3);
}

TEST_CASE("separable max pooling equals the direct definition on random shapes, on every ISA") {
  std::mt19937 rng(21);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 90; ++trial) {
    Pool2dOptions o;
    o.kh = r(1, 4), o.kw = r(1, 4), o.stride_h = r(1, 3), o.stride_w = r(1, 3), o.ceil_mode = r(0, 1);
    if (trial % 3 == 0) o.kw = r(2, 3), o.stride_w = 2;  // the vector loop's windows
    o.pad_h = r(0, o.kh / 2), o.pad_w = r(0, o.kw / 2), o.dilation_h = r(1, 2);
    Pool2d p("p", PoolKind::Max, o);
    // Rows up to 80 wide: several vectors of 16, and every tail length.
    Tensor x(Shape{r(1, 2), r(1, 3), r(o.kh * 2, 20), r(o.kw, trial % 2 ? 20 : 80)});
    test::fill_random(x.data(), x.numel(), rng);
    if (trial % 7 == 0) x[r(0, int(x.numel()) - 1)] = std::nanf("");
    if (trial % 5 == 0) x[r(0, int(x.numel()) - 1)] = -std::numeric_limits<float>::infinity();
    Tensor want(p.output_shape({x.shape()}));
    p.forward_direct(x.view(), want.view());
    for (Isa isa : test::available_isas()) {
      test::IsaScope scope(isa);
      Tensor got(want.shape());
      p.forward({x.view()}, got.view(), nullptr);
      INFO("trial " << trial << " " << p.describe() << " input " << x.shape().str() << " " << isa_name(isa));
      for (int64_t i = 0; i < got.numel(); ++i)
        REQUIRE((got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]))));
    }
  }
}

TEST_CASE("ReLU6 clamps to [0, 6] as a layer and in the epilogue") {
  const float in[] = {-3.f, -0.f, 0.5f, 5.999f, 6.f, 6.5f, 1e30f, -1e30f};
  const float want[] = {0.f, 0.f, 0.5f, 5.999f, 6.f, 6.f, 6.f, 0.f};
  Tensor x = Tensor::from(Shape{1, 8, 1, 1}, in), y(x.shape());
  ActivationLayer("r", Activation::ReLU6).forward({x.view()}, y.view(), nullptr);
  const Epilogue ep{nullptr, Activation::ReLU6};
  for (int i = 0; i < 8; ++i) {
    CHECK(y.data()[i] == want[i]);
    CHECK(ep.activate(in[i]) == want[i]);
  }
  CHECK(std::string(activation_name(Activation::ReLU6)) == "ReLU6");
}

TEST_CASE("layers reject impossible parameters and inputs with the layer's name") {
  CHECK_THROWS_WITH_AS(Conv2d("conv", Conv2dOptions{6, 4}.group(4)), doctest::Contains("conv"), Error);
  CHECK_THROWS_AS(Pool2d("p", PoolKind::Max, Pool2dOptions{}.kernel(2).padding(2)), Error);
  Conv2d c("features.0", Conv2dOptions{3, 8}.kernel(3));
  CHECK_THROWS_WITH_AS(c.output_shape({Shape{1, 4, 8, 8}}), doctest::Contains("features.0"), Error);
  CHECK_THROWS_WITH_AS(c.output_shape({Shape{1, 3, 2, 8}}), doctest::Contains("smaller than the kernel"), Error);
  Linear l("fc", 10, 2);
  CHECK_THROWS_WITH_AS(l.output_shape({Shape{1, 3, 2, 2}}), doctest::Contains("expected 10"), Error);
  Add a("add");
  CHECK_THROWS_WITH_AS(a.output_shape({Shape{1, 3, 2, 2}, Shape{1, 3, 2, 3}}), doctest::Contains("differ"), Error);
}

TEST_CASE("a fused residual is added before the activation on every convolution path and ISA") {
  std::mt19937 rng(31);
  struct Case {
    const char* name;
    Conv2dOptions o;
    int64_t h;
  };
  const Case cases[] = {{"pointwise", Conv2dOptions{24, 40}, 9},
                        {"pointwise, several K blocks", Conv2dOptions{300, 40}, 9},
                        {"im2col", Conv2dOptions{5, 12}.kernel(3).stride(2).padding(1), 11},
                        {"im2col, several K blocks", Conv2dOptions{40, 24}.kernel(3).stride(3).padding(1), 11},
                        {"direct, strided", Conv2dOptions{40, 48}.kernel(3).stride(2).padding(1), 29},
                        {"winograd 4x4", Conv2dOptions{16, 24}.kernel(3).padding(1), 30},
                        {"winograd 2x2", Conv2dOptions{128, 128}.kernel(3).padding(1), 7},
                        {"small map", Conv2dOptions{64, 96}.kernel(3).padding(1), 2},
                        {"small map, strided", Conv2dOptions{32, 48}.kernel(3).stride(2).padding(1), 5},
                        {"depthwise", Conv2dOptions{8, 8}.kernel(3).padding(1).group(8), 10}};
  for (Isa isa : test::available_isas())
    for (const Case& c : cases)
      for (Activation act : {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid}) {
        test::IsaScope scope(isa);
        Conv2d conv("c", c.o);
        test::fill_params(conv, rng, 0.2f);
        conv.set_residual();
        conv.set_activation(act, 0.f);
        conv.prepare();
        REQUIRE(conv.in_place_input() == 1);
        Tensor x(Shape{2, c.o.in_channels, c.h, c.h});
        test::fill_random(x.data(), x.numel(), rng);
        const Shape out{2, c.o.out_channels, c.o.out_h(c.h), c.o.out_w(c.h)};
        Tensor r(out), y(out), ref(out);
        test::fill_random(r.data(), r.numel(), rng);
        std::vector<float> ws(std::size_t(conv.workspace_floats({x.shape(), r.shape()}) + 1));
        conv.forward({x.view(), r.view()}, y.view(), ws.data());
        Epilogue post{conv.bias_data(), act};
        post.residual = r.data(), post.out_base = ref.data();
        conv2d_reference(x.view(), conv.weight().values.data(), nullptr, c.o, ref.view(), post);
        INFO(isa_name(isa) << " " << c.name << " (" << conv.describe() << ")");
        CHECK(test::rel_error(y.data(), ref.data(), y.numel()) < 1e-4);
        // The graph may give the output the residual's buffer: the same result written over it.
        Tensor over(out);
        std::copy(r.data(), r.data() + r.numel(), over.data());
        conv.forward({x.view(), over.view()}, over.view(), ws.data());
        CHECK(test::rel_error(over.data(), ref.data(), ref.numel()) < 1e-4);
      }
}
