// Whole models against PyTorch (tests/golden/models, made by tools/make_golden.py), and what
// happens when a weights file does not fit its architecture.
#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace cnn;

namespace {

const char* kCases[] = {"vgg16_w0125",    "vgg16_bn_w0125", "resnet18_w025",
                        "resnet50_w0125", "resnet18_heads", "mobilenet_v2_w035"};

// Copies a golden weights file into a writer so tests can damage it.
SafeTensorsWriter copy_of(const std::string& path) {
  const SafeTensors st = SafeTensors::open(path);
  SafeTensorsWriter w;
  for (auto& n : st.names()) {
    std::vector<float> v;
    if (st.entry(n).dtype != "F32") continue;
    st.read(n, v);
    w.add(n, st.dims(n), v);
  }
  w.metadata = st.metadata();
  return w;
}

std::string load_error(const SafeTensorsWriter& w, const std::string& arch = "") {
  const std::string b = w.bytes();
  try {
    load_model(SafeTensors::from_memory("m.safetensors", std::vector<uint8_t>(b.begin(), b.end())), arch);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("small VGG, ResNet and MobileNet V2 models equal PyTorch to 1e-4") {
  for (const char* name : kCases) {
    SUBCASE(name) {
      const std::string base = test::golden(std::string("models/") + name);
      Model m = load_model(base + ".safetensors");
      Tensor x = read_npy_nchw(base + ".input.npy");
      for (int threads : {1, 2}) {
        test::ThreadScope t(threads);
        std::vector<Tensor> out = m.graph.forward(x.view());
        const auto names = m.graph.output_names();
        REQUIRE(out.size() == names.size());
        for (std::size_t k = 0; k < out.size(); ++k) {
          NpyArray want = read_npy(base + "." + names[k] + ".npy");
          REQUIRE(int64_t(want.values.size()) == out[k].numel());
          const double err = test::rel_error(out[k].data(), want.values.data(), out[k].numel());
          INFO(name << " output " << names[k] << " threads " << threads << " error " << err);
          CHECK(err < 1e-4);
        }
      }
    }
  }
}

TEST_CASE("a network described by its file's metadata (the converted YuNet) equals PyTorch running the same file") {
  // golden/models/yunet_graph.safetensors: tools/graph_torch.py --golden, PyTorch on
  // weights/yunet.safetensors's own graph description, a 64x96 input of 0..255 values.
  Model m = load_model(std::string(FACECNN_SOURCE_DIR) + "/weights/yunet.safetensors");
  CHECK(m.config.arch == "graph");
  const SafeTensors g = SafeTensors::open(test::golden("models/yunet_graph.safetensors"));
  std::vector<float> in;
  g.read("input", in);
  const auto d = g.dims("input");
  Tensor x(Shape{d[0], d[1], d[2], d[3]});
  std::copy(in.begin(), in.end(), x.data());
  for (int threads : {1, 2}) {
    test::ThreadScope t(threads);
    const std::vector<Tensor> out = m.graph.forward(x.view());
    const auto names = m.graph.output_names();
    REQUIRE(names.size() == 12);
    for (std::size_t k = 0; k < out.size(); ++k) {
      std::vector<float> want;
      g.read(names[k], want);
      REQUIRE(int64_t(want.size()) == out[k].numel());
      const double err = test::rel_error(out[k].data(), want.data(), out[k].numel());
      INFO(names[k] << " threads " << threads << " error " << err);
      CHECK(err < 1e-4);
    }
  }
}

TEST_CASE("graph descriptions that do not hold together are refused with the node named") {
  auto error = [](const std::string& graph) {
    try {
      build_graph_from_json(graph, "g.safetensors");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string in = R"("inputs":[{"name":"x","channels":3}],)";
  const std::string out = R"(,"outputs":[["y","c"]]})";
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Conv2d","in_channels":3,"out_channels":4,"kernel":3}])" + out).empty());
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Mish"}])" + out).find("uses op 'Mish'") != std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Conv2d","in_channels":3,"out_channels":4}])" + out).find(
            "graph node 'c' (Conv2d): needs \"kernel\"") != std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Add","inputs":["x","z"]}])" + out).find(
            "reads 'z', which no earlier node defines") != std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Add","inputs":["x"]}])" + out).find("takes 2 input(s), given 1") !=
        std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Upsample","scale":2,"mode":"bilinear"}])" + out).find(
            "only mode \"nearest\"") != std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"ReLU"},{"name":"c","op":"ReLU"}])" + out).find("used twice") !=
        std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"MaxPool2d","kernel":-2}])" + out).find("non-negative integer") !=
        std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"ReLU"}],"outputs":[["y","nope"]]})").find("unknown node 'nope'") !=
        std::string::npos);
  CHECK(error(R"({"nodes":[]})").find("needs one entry in \"inputs\"") != std::string::npos);
  CHECK(error("{" + in + R"("nodes":[{"name":"c","op":"Conv2d","in_channels":3,"out_channels":4,"kernel":3,"groups":2}])" +
              out).find("g.safetensors: graph node 'c': Conv2d 'c': groups must divide") != std::string::npos);
  CHECK(error("{ not json").find("metadata 'graph' is not valid JSON") != std::string::npos);
}

TEST_CASE("nearest upsampling equals its definition on every ISA") {
  std::mt19937 rng(9);
  for (Isa isa : test::available_isas())
    for (int scale : {1, 2, 3}) {
      test::IsaScope scope(isa);
      Tensor x(Shape{2, 3, 5, 37});
      test::fill_random(x.data(), x.numel(), rng);
      Upsample2d up("up", scale);
      const Shape s = up.output_shape({x.shape()});
      Tensor y(s), ref(s);
      up.forward({x.view()}, y.view(), nullptr);
      upsample_nearest_reference(x.view(), scale, ref.view());
      INFO(isa_name(isa) << " scale " << scale);
      CHECK(std::equal(y.data(), y.data() + y.numel(), ref.data()));
    }
}

TEST_CASE("MobileNet V2 has torchvision's parameter counts, at width 1 and at width 0.35") {
  // Both counts are PyTorch's sum(p.numel() for p in parameters()), written by tools/make_golden.py:
  // num_params for the golden model, torchvision_num_params for torchvision.models.mobilenet_v2().
  const SafeTensors st = SafeTensors::open(test::golden("models/mobilenet_v2_w035.safetensors"));
  const Model m = load_model(st);
  CHECK(m.config.arch == "mobilenet_v2");
  CHECK(m.config.width == 0.35);
  CHECK(build_model(m.config).param_count() == std::stoll(st.meta("num_params")));
  ModelConfig full;
  full.arch = "mobilenet_v2";
  CHECK(build_model(full).param_count() == std::stoll(st.meta("torchvision_num_params")));
  // torchvision's _make_divisible(v, 8): nearest multiple of 8, at least 8, not more than 10% down.
  CHECK(models::make_divisible(32 * 0.35) == 16);
  CHECK(models::make_divisible(16 * 0.35) == 8);
  CHECK(models::make_divisible(96 * 0.35) == 32);
  CHECK(models::make_divisible(1280 * 1.4) == 1792);
  CHECK(models::make_divisible(20) == 24);
}

TEST_CASE("the model's configuration comes from the file's metadata") {
  Model m = load_model(test::golden("models/resnet18_heads.safetensors"));
  CHECK(m.config.arch == "resnet18");
  CHECK(m.config.width == 0.125);
  REQUIRE(m.config.heads.size() == 3);
  CHECK(m.graph.output_names() == std::vector<std::string>{"gender", "age_group", "age"});
  CHECK(m.meta_numbers("input_size") == std::vector<double>{3, 48, 48});
}

TEST_CASE("weights that do not fit the architecture are refused by name") {
  const std::string path = test::golden("models/resnet18_w025.safetensors");
  {
    SafeTensorsWriter w = copy_of(path);
    w.tensors.erase("layer2.1.bn1.running_var");
    CHECK(load_error(w).find("missing tensor 'layer2.1.bn1.running_var'") != std::string::npos);
  }
  {
    SafeTensorsWriter w = copy_of(path);
    w.add("layer9.conv.weight", {1}, {0.f});
    CHECK(load_error(w).find("unexpected tensor 'layer9.conv.weight'") != std::string::npos);
  }
  {
    SafeTensorsWriter w = copy_of(path);
    w.tensors["layer1.0.conv1.weight"].dims = {16, 16, 9, 1};
    CHECK(load_error(w).find("'layer1.0.conv1.weight' has shape [16, 16, 9, 1]") != std::string::npos);
  }
  {
    SafeTensorsWriter w = copy_of(path);
    CHECK(load_error(w, "resnet50").find("holds a 'resnet18' model, not 'resnet50'") != std::string::npos);
  }
  {
    SafeTensorsWriter w = copy_of(path);
    w.metadata["config"] = "{\"arch\":\"resnet18\",\"width\":-1}";
    CHECK(load_error(w).find("'width' must be a positive number") != std::string::npos);
  }
  {
    SafeTensorsWriter w = copy_of(path);
    w.metadata.clear();
    CHECK(load_error(w).find("no 'arch'") != std::string::npos);
    // Naming the architecture makes a file without metadata loadable as plain torchvision
    // (width 1), so this reduced-width file is refused at its first tensor.
    CHECK(load_error(w, "resnet18").find("'conv1.weight' has shape [16, 3, 7, 7]") != std::string::npos);
  }
}

TEST_CASE("a model configuration survives its JSON round trip") {
  ModelConfig c;
  c.arch = "vgg13_bn";
  c.width = 0.3;
  c.vgg_hidden = 77;
  c.heads = {{"gender", 2}, {"age \"years\"", 1}};
  const ModelConfig d = ModelConfig::from_json(c.to_json(), "test");
  CHECK(d.arch == c.arch);
  CHECK(d.width == c.width);
  CHECK(d.vgg_hidden == 77);
  REQUIRE(d.heads.size() == 2);
  CHECK(d.heads[1].name == "age \"years\"");
  CHECK_THROWS_WITH_AS(ModelConfig::from_json("{\"heads\":[{\"name\":3}]}", "f.safetensors"),
                       doctest::Contains("f.safetensors: each config head"), Error);
}

TEST_CASE("in bf16 (set_bf16) the models stay within 1e-2 of PyTorch's fp32 outputs") {
  if (!kernels::bf16_available()) {
    MESSAGE("this CPU has no AVX512_BF16: the bf16 path is not run here");
    return;
  }
  struct Bf16Scope {
    Bf16Scope() { set_bf16(true); }
    ~Bf16Scope() { set_bf16(false); }
  } bf16;
  int changed = 0;  // models whose output the bf16 kernels changed (they ran)
  for (const char* name : kCases) {
    const std::string base = test::golden(std::string("models/") + name);
    Model m = load_model(base + ".safetensors");
    const Tensor x = read_npy_nchw(base + ".input.npy");
    const std::vector<Tensor> out = m.graph.forward(x.view());
    set_bf16(false);
    const std::vector<Tensor> fp32 = m.graph.forward(x.view());
    set_bf16(true);
    const auto names = m.graph.output_names();
    for (std::size_t k = 0; k < out.size(); ++k) {
      const NpyArray want = read_npy(base + "." + names[k] + ".npy");
      const double err = test::rel_error(out[k].data(), want.values.data(), out[k].numel());
      INFO(name << " output " << names[k] << " error " << err);
      CHECK(err < 1e-2);
      changed += test::rel_error(out[k].data(), fp32[k].data(), out[k].numel()) > 0;
    }
  }
  CHECK(changed >= 3);
}
