// Int8 convolution kernels (kernels/int8.hpp) against their reference, bit for bit.
#include <doctest/doctest.h>

#include "cnn/kernels/int8.hpp"
#include <set>

#include "test_util.hpp"

using namespace cnn;
namespace q8 = cnn::kernels::int8;

namespace {
// Every int8 path this CPU runs: the portable one, AVX2 (vpmaddwd) and, where the CPU has it, VNNI.
struct Int8Path {
  const char* name;
  Isa isa;
};
std::vector<Int8Path> int8_paths() {
  std::vector<Int8Path> v{{"generic", Isa::Generic}};
  for (Isa isa : test::available_isas())
    if (isa == Isa::AVX2) v.push_back({"avx2", Isa::AVX2});
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

// ---------------------------------------------------------------------------------------------
// QuantizedModel on whole networks (cnn/quantize.hpp).

#include "cnn/quantize.hpp"

namespace {
double cosine(const float* a, const float* b, std::size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}
// The golden input and noisy copies of it: calibration inputs like the ones the model will see.
std::vector<Tensor> calibration_like(const Tensor& x, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.3f);
  std::vector<Tensor> v;
  v.push_back(x.clone());
  for (int k = 1; k < n; ++k) {
    Tensor t = x.clone();
    for (int64_t i = 0; i < t.numel(); ++i) t[i] += nd(rng);
    v.push_back(std::move(t));
  }
  return v;
}
SafeTensors in_memory(const std::string& label, const std::string& bytes) {
  return SafeTensors::from_memory(label, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}
}  // namespace

TEST_CASE("int8 VGG16, VGG16-BN, ResNet-18 and ResNet-50 (narrow golden models) follow PyTorch's fp32 outputs") {
  for (const char* name : {"resnet18_w025", "resnet50_w0125", "vgg16_w0125", "vgg16_bn_w0125"}) {
    const std::string base = test::golden(std::string("models/") + name);
    Model m = load_model(base + ".safetensors");
    const Tensor x = read_npy_nchw(base + ".input.npy");
    const NpyArray want = read_npy(base + ".logits.npy");
    QuantizedModel q(m.graph, calibration_like(x, 4, 5));
    const Tensor got = std::move(q.forward(x.view())[0]);
    INFO(name, "\n", q.report());
    REQUIRE(std::size_t(got.numel()) == want.values.size());
    CHECK(cosine(got.data(), want.values.data(), want.values.size()) > 0.995);
    int layers = 0;  // every convolution and linear layer is a candidate here
    for (std::size_t i = 1; i < m.graph.num_nodes(); ++i)
      layers += m.graph.layer(int(i))->type() == "Conv2d" || m.graph.layer(int(i))->type() == "Linear";
    CHECK(int(q.sqnr_db().size()) == layers);
    CHECK(q.int8_layers() >= layers * 3 / 4);
  }
}

TEST_CASE("int8 outputs do not depend on the thread count, nor (beyond the fp32 layers' rounding) on the ISA") {
  const std::string base = test::golden("models/resnet18_w025");
  Model m = load_model(base + ".safetensors");
  const Tensor x = read_npy_nchw(base + ".input.npy");
  QuantizedModel q(m.graph, calibration_like(x, 3, 9));
  const Tensor first = std::move(q.forward(x.view())[0]);
  for (Isa isa : test::available_isas()) {
    test::IsaScope scope(isa);
    Tensor one;
    for (int threads : {1, 2}) {
      test::ThreadScope ts(threads);
      Tensor y = std::move(q.forward(x.view())[0]);
      if (threads == 1) one = std::move(y);
      else CHECK(std::memcmp(y.data(), one.data(), one.bytes()) == 0);
    }
    // The int8 layers are bit-exact on every path (kernel tests); the fp32 head sums in another order.
    CHECK(test::rel_error(one.data(), first.data(), first.numel()) < 1e-5);
  }
}

TEST_CASE("a saved int8 form loads to the same outputs, and the file still loads as the float model") {
  const std::string path = test::golden("models/resnet18_heads.safetensors");
  const SafeTensors source = SafeTensors::open(path);
  Model m = load_model(source);
  const Tensor x = read_npy_nchw(test::golden("models/resnet18_heads.input.npy"));
  QuantizedModel q(m.graph, calibration_like(x, 3, 2));
  const SafeTensors saved = in_memory("saved.safetensors", q.file_bytes(source));
  CHECK_FALSE(saved.meta("quantization").empty());
  CHECK(saved.meta("config") == source.meta("config"));

  Model again = load_model(saved);  // the int8 tensors are skipped by the float loader
  QuantizedModel loaded(again.graph, saved);
  const auto a = q.forward(x.view()), b = loaded.forward(x.view());
  const auto f0 = m.graph.forward(x.view()), f1 = again.graph.forward(x.view());
  REQUIRE(a.size() == 3);
  for (std::size_t k = 0; k < a.size(); ++k) {
    CHECK(std::memcmp(a[k].data(), b[k].data(), a[k].bytes()) == 0);
    CHECK(std::memcmp(f0[k].data(), f1[k].data(), f0[k].bytes()) == 0);
  }
  CHECK(loaded.report() == q.report());
}

TEST_CASE("int8: unusable calibration inputs and broken int8 forms are errors naming the file") {
  const std::string path = test::golden("models/resnet18_w025.safetensors");
  const SafeTensors source = SafeTensors::open(path);
  Model m = load_model(source);
  const Tensor x = read_npy_nchw(test::golden("models/resnet18_w025.input.npy"));
  auto error_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of([&] { QuantizedModel(m.graph, std::vector<Tensor>{}); }).find("no calibration inputs") != std::string::npos);
  {
    std::vector<Tensor> bad = calibration_like(x, 2, 1);
    bad[1][7] = std::numeric_limits<float>::quiet_NaN();
    CHECK(error_of([&] { QuantizedModel(m.graph, bad); }).find("non-finite") != std::string::npos);
  }
  CHECK(error_of([&] { QuantizedModel(m.graph, source); }).find("holds no int8 form") != std::string::npos);

  QuantizedModel q(m.graph, calibration_like(x, 2, 3));
  const SafeTensors good = in_memory("good.safetensors", q.file_bytes(source));
  // The same file with its metadata or tensors changed.
  auto altered = [&](const std::string& from, const std::string& to, const std::string& drop = "") {
    SafeTensorsWriter w;
    for (const std::string& n : good.names()) {
      if (n == drop) continue;
      std::vector<float> v;
      if (good.entry(n).dtype == "I8") {
        const std::vector<int8_t> q8 = good.read_int8(n);
        v.assign(q8.begin(), q8.end());
      } else {
        good.read(n, v);
      }
      w.add(n, good.entry(n).shape, v, good.entry(n).dtype);
    }
    w.metadata = good.metadata();
    std::string& text = w.metadata["quantization"];
    const std::size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    return in_memory("altered.safetensors", w.bytes());
  };
  auto load_error = [&](const SafeTensors& f) { return error_of([&] { QuantizedModel(m.graph, f); }); };
  CHECK(load_error(good).empty());
  const std::string meta = good.meta("quantization");
  const std::string first_scale = meta.substr(meta.find("\"conv1\":[") + 9, meta.find(',', meta.find("\"conv1\":[")) - meta.find("\"conv1\":[") - 9);
  const struct {
    std::string from, to, drop, expect;
  } cases[] = {
      {"\"conv1\":[" + first_scale, "\"conv1\":[0", "", "finite positive"},
      {"\"conv1\":[" + first_scale, "\"conv1\":[1e999", "", "finite positive"},
      {"\"conv1\":[" + first_scale, "\"conv1\":[-1", "", "finite positive"},
      {"\"@input\":[", "\"@unknown\":[", "", "no activation range for '@input'"},
      {"\"weight_scales\":[", "\"weight_scales\":[0,", "", "needs"},
      {"\"weight_scales\":[", "\"weight_scales\":[", "conv1.weight_int8", "no tensor 'conv1.weight_int8'"},
      {"\"format\":1", "\"format\":2", "", "format"},
      {"\"int8\":{", "\"int8\":{\"nonesuch\":{},", "", "not in the model"},
      {"\"activations\":{", "\"activations\":[", "", "not valid JSON"},
  };
  for (const auto& c : cases) {
    const std::string e = load_error(altered(c.from, c.to, c.drop));
    INFO(c.to, " / ", c.drop, ": ", e);
    CHECK(e.find("altered.safetensors") != std::string::npos);
    CHECK(e.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("int8 helpers: u8 max pooling equals pooling before quantizing; vector quantizing equals the formula") {
  std::mt19937 rng(4);
  const Shape s{1, 37, 9, 11};
  Tensor x(s);
  test::fill_random(x.data(), x.numel(), rng);
  const QuantParams qp = choose_qparams(-1.0, 1.0);
  Pool2dOptions o;
  o.kernel(3).stride(2).padding(1);
  Pool2d pool("pool", PoolKind::Max, o);
  const Shape ps = pool.output_shape({s});
  Tensor pooled(ps);
  pool.forward({x.view()}, pooled.view(), nullptr);
  std::vector<uint8_t> xq(std::size_t(s.numel() + 64)), pq(std::size_t(ps.numel())), want(std::size_t(ps.numel() + 64));
  std::vector<uint8_t> generic(std::size_t(s.numel() + 64));
  for (Isa isa : test::available_isas()) {
    test::IsaScope scope(isa);
    quant::quantize_nchw(x.data(), s, qp, xq.data());
    if (isa == Isa::Generic) generic = xq;
    CHECK(xq == generic);
    quant::max_pool_nhwc(xq.data(), s, o, ps, pq.data());
    quant::quantize_nchw(pooled.data(), ps, qp, want.data());
    CHECK(std::equal(pq.begin(), pq.end(), want.begin()));
  }
}

TEST_CASE("quantizing NaN and infinities gives the same bytes on every path (NaN and -inf: 0, +inf: 255)") {
  const Shape s{1, 2, 1, 19};
  Tensor x(s);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = float(i) - 10.f;
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[4] = std::numeric_limits<float>::infinity();
  x[5] = -std::numeric_limits<float>::infinity();
  x[30] = std::numeric_limits<float>::quiet_NaN();
  const QuantParams qp = choose_qparams(-10.0, 30.0);
  std::vector<uint8_t> first;
  for (Isa isa : test::available_isas()) {
    test::IsaScope scope(isa);
    std::vector<uint8_t> q(std::size_t(s.numel() + 64));
    quant::quantize_nchw(x.data(), s, qp, q.data());
    CHECK(q[3 * 2] == 0);  // NHWC: pixel 3, channel 0
    CHECK(q[4 * 2] == 255);
    CHECK(q[5 * 2] == 0);
    CHECK(q[(30 - 19) * 2 + 1] == 0);
    if (first.empty()) first = q;
    CHECK(q == first);
  }
}
