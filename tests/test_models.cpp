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
