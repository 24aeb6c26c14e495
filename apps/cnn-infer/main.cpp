// cnn-infer — runs a VGG or ResNet on a .npy tensor; the scripting entry point used to check the
// engine against PyTorch from outside.
//
//   cnn-infer --arch resnet50 --weights r50.safetensors --input x.npy --output y.npy [--threads T]
//   cnn-infer --arch vgg16 --random-weights --input-shape 1,3,224,224 --bench 10
//   cnn-infer --weights model.safetensors --summary
//   cnn-infer --weights m.safetensors --precision int8 --calibrate calib.npy --save-int8 m.int8.safetensors
//   cnn-infer --weights m.int8.safetensors --precision int8 --input x.npy --output y.npy
//   cnn-infer --arch resnet50 --random-weights --input-shape 64,3,224,224 --device cuda --precision tf32 --bench 20
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <cnn/cnn.hpp>
#include <cnn/quantize.hpp>
#ifdef FACECNN_HAVE_CUDA
#include <cnn/cuda/model.hpp>
#endif

namespace {

const char* kUsage =
    "usage: cnn-infer [--arch ARCH] [--weights FILE.safetensors | --random-weights] [options]\n"
    "  --arch ARCH           vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn vgg19_bn\n"
    "                        resnet18 resnet34 resnet50 resnet101 mobilenet_v2\n"
    "                        (default: from the weights' metadata)\n"
    "  --weights FILE        .safetensors with torchvision state_dict names\n"
    "  --random-weights      seeded random parameters instead of a file (--seed S)\n"
    "  --num-classes N       classifier outputs (default: from the weights, else 1000)\n"
    "  --input IN.npy        float32 NCHW input, already normalised (batch > 1 allowed)\n"
    "  --output OUT.npy      float32 output; (N,C,1,1) is written as (N,C). A model with several\n"
    "                        heads writes OUT.<head>.npy for each head\n"
    "  --input-shape N,C,H,W input shape when there is no --input (default 1,3,224,224)\n"
    "  --threads T           worker threads, 0 = all cores (default 0)\n"
    "  --bench N             time N runs after a warm-up; prints one JSON line\n"
    "  --summary             print the layer table (layer, type, output shape, parameters)\n"
    "  --profile             time each layer (fastest of 5 runs), slowest first\n"
    "  --precision P         fp32 (default), bf16 or int8. bf16: the convolutions that run as GEMMs\n"
    "                        multiply in bf16 with fp32 sums (needs AVX512_BF16); int8 takes the\n"
    "                        weights file's int8 form, or calibrates one from --calibrate.\n"
    "                        With --device cuda: fp32, tf32 or bf16 (the convolutions' arithmetic)\n"
    "  --device D            cpu (default) or cuda: the whole model on GPU 0 (a build with\n"
    "                        -DFACECNN_CUDA=ON); --bench then times the GPU with CUDA events\n"
    "  --calibrate SRC       calibration inputs for int8: a .npy (N,C,H,W, normalised like --input),\n"
    "                        a folder of them, or 'random' (seeded noise: for timing only)\n"
    "  --calibration R       minmax or percentile (default) activation ranges\n"
    "  --min-sqnr DB         layers whose own int8 error is larger stay fp32 (default 20 dB)\n"
    "  --save-int8 OUT       write the weights file again with the calibrated int8 form added\n";

struct Options {
  std::string arch, weights, input, output, precision = "fp32", calibrate, save_int8, device = "cpu";
  cnn::QuantizeOptions quant;
  bool random_weights = false, summary = false, profile = false;
  int64_t num_classes = 0;
  int threads = 0, bench = 0;
  uint32_t seed = 1;
  cnn::Shape shape{1, 3, 224, 224};
  bool shape_given = false;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "cnn-infer: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

long long parse_int(const std::string& flag, const std::string& v, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < lo || x > hi)
    usage_error(flag + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return x;
}

// An output file's folder must exist and be writable (an empty path: no output).
void check_output_path(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) usage_error(flag + ": " + path + ": directory " + dir + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0) usage_error(flag + ": " + path + ": directory " + dir + " is not writable");
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--arch") o.arch = value();
    else if (a == "--weights") o.weights = value();
    else if (a == "--random-weights") o.random_weights = true;
    else if (a == "--seed") o.seed = uint32_t(parse_int(a, value(), 0, 0xffffffffLL));
    else if (a == "--num-classes") o.num_classes = parse_int(a, value(), 1, 1 << 24);
    else if (a == "--input") o.input = value();
    else if (a == "--output") o.output = value();
    else if (a == "--threads") o.threads = int(parse_int(a, value(), 0, 4096));
    else if (a == "--bench") o.bench = int(parse_int(a, value(), 1, 1000000));
    else if (a == "--summary") o.summary = true;
    else if (a == "--profile") o.profile = true;
    else if (a == "--precision") {
      o.precision = value();
      if (o.precision != "fp32" && o.precision != "bf16" && o.precision != "int8" && o.precision != "tf32")
        usage_error("--precision expects fp32, bf16, int8 or (with --device cuda) tf32, got '" + o.precision + "'");
    } else if (a == "--device") {
      o.device = value();
      if (o.device != "cpu" && o.device != "cuda") usage_error("--device expects cpu or cuda, got '" + o.device + "'");
    } else if (a == "--calibrate") o.calibrate = value();
    else if (a == "--save-int8") o.save_int8 = value();
    else if (a == "--calibration") {
      const std::string v = value();
      if (v != "minmax" && v != "percentile") usage_error("--calibration expects minmax or percentile, got '" + v + "'");
      o.quant.range = v == "minmax" ? cnn::CalibrationRange::MinMax : cnn::CalibrationRange::Percentile;
    } else if (a == "--min-sqnr") o.quant.min_sqnr_db = double(parse_int(a, value(), -100, 200));
    else if (a == "--input-shape") {
      const std::string v = value();
      int64_t d[4];
      std::size_t p = 0;
      for (int k = 0; k < 4; ++k) {
        const std::size_t q = k < 3 ? v.find(',', p) : v.size();
        if (q == std::string::npos) usage_error("--input-shape expects N,C,H,W, got '" + v + "'");
        d[k] = parse_int("--input-shape", v.substr(p, q - p), 1, 1 << 20);
        p = q + 1;
      }
      o.shape = {d[0], d[1], d[2], d[3]};
      o.shape_given = true;
    } else usage_error("unknown option '" + a + "'");
  }
  if (o.weights.empty() && !o.random_weights) usage_error("give --weights FILE or --random-weights");
  if (!o.weights.empty() && o.random_weights) usage_error("--weights and --random-weights exclude each other");
  if (o.random_weights && o.arch.empty()) usage_error("--random-weights needs --arch");
  if (!o.output.empty() && o.input.empty()) usage_error("--output needs --input");
  check_output_path("--output", o.output);  // before the model is loaded and run, not after
  if (!o.input.empty() && o.shape_given) usage_error("--input-shape and --input exclude each other");
  if (o.precision != "int8" && (!o.calibrate.empty() || !o.save_int8.empty()))
    usage_error("--calibrate and --save-int8 need --precision int8");
  if (o.precision == "int8" && o.random_weights && o.calibrate.empty())
    usage_error("--precision int8 with --random-weights needs --calibrate");
  if (!o.save_int8.empty() && (o.calibrate.empty() || o.random_weights))
    usage_error("--save-int8 needs --weights and --calibrate (it writes the weights file with its int8 form)");
  check_output_path("--save-int8", o.save_int8);
  if (o.device == "cpu" && o.precision == "tf32") usage_error("--precision tf32 needs --device cuda");
  if (o.device == "cuda") {
    if (o.precision == "int8") usage_error("--precision int8 runs on the CPU only (--device cpu)");
    if (o.profile) usage_error("--profile times the CPU's layers; not with --device cuda");
  }
  if (o.input.empty() && !o.bench && !o.summary && !o.profile && o.save_int8.empty())
    usage_error("nothing to do: give --input, --bench, --summary or --save-int8");
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The calibration inputs --calibrate names: a .npy, every .npy in a folder, or seeded noise.
std::vector<cnn::Tensor> calibration_inputs(const Options& o, const cnn::Shape& shape) {
  std::vector<cnn::Tensor> v;
  if (o.calibrate == "random") {
    std::mt19937 rng(o.seed + 1);
    std::normal_distribution<float> nd;
    for (int k = 0; k < 4; ++k) {
      cnn::Tensor t(shape);
      for (int64_t i = 0; i < t.numel(); ++i) t[i] = nd(rng);
      v.push_back(std::move(t));
    }
    return v;
  }
  struct stat st;
  if (::stat(o.calibrate.c_str(), &st) != 0) throw cnn::Error("--calibrate: " + o.calibrate + ": no such file or folder");
  if (!S_ISDIR(st.st_mode)) {
    v.push_back(cnn::read_npy_nchw(o.calibrate));
    return v;
  }
  std::vector<std::string> files;
  if (DIR* d = ::opendir(o.calibrate.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".npy") == 0) files.push_back(o.calibrate + "/" + n);
    }
    ::closedir(d);
  }
  if (files.empty()) throw cnn::Error("--calibrate: " + o.calibrate + ": the folder holds no .npy files");
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) v.push_back(cnn::read_npy_nchw(f));
  return v;
}

int run(const Options& o) {
  if (o.threads) cnn::set_num_threads(o.threads);
#ifndef FACECNN_HAVE_CUDA
  if (o.device == "cuda")
    throw cnn::Error("--device cuda: this cnn-infer was built without the CUDA backend (configure with -DFACECNN_CUDA=ON)");
#endif
  if (o.precision == "bf16" && o.device == "cpu") {
    if (!cnn::kernels::bf16_available())
      throw cnn::Error("--precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps); use fp32 or int8");
    cnn::set_bf16(true);
  }
  cnn::Model model;
  std::optional<cnn::SafeTensors> file;
  if (o.random_weights) {
    model.config.arch = o.arch;
    if (o.num_classes) model.config.num_classes = o.num_classes;
    model.graph = cnn::build_model(model.config);
  }
  cnn::Tensor input;
  cnn::Shape shape = o.shape;
  if (!o.input.empty()) {
    input = cnn::read_npy_nchw(o.input);
    shape = input.shape();
  }
  if (o.summary && o.random_weights) std::fputs(model.graph.summary(shape).c_str(), stdout);
  if (o.random_weights) model.graph.init_random(o.seed);
  else {
    file.emplace(cnn::SafeTensors::open(o.weights));
    model = cnn::load_model(*file, o.arch, o.num_classes);
    if (!o.shape_given && o.input.empty()) {  // the input size the model was exported for
      const auto in = model.meta_numbers("input_size");
      if (in.size() == 3) shape = {1, int64_t(in[0]), int64_t(in[1]), int64_t(in[2])};
    }
    // The table as built (before BatchNorm folding), so it reads like the PyTorch model.
    if (o.summary) std::fputs(cnn::build_unloaded(model, o.weights).summary(shape).c_str(), stdout);
  }
  if (input.numel() == 0 && (o.bench || o.profile || !o.output.empty())) {
    input = cnn::Tensor(shape);
    std::mt19937 rng(o.seed);
    std::normal_distribution<float> nd;
    for (int64_t i = 0; i < input.numel(); ++i) input[i] = nd(rng);
  }
  std::unique_ptr<cnn::QuantizedModel> int8;
  if (o.precision == "int8") {
    if (o.calibrate.empty()) {
      int8 = std::make_unique<cnn::QuantizedModel>(model.graph, *file);
    } else {
      const std::vector<cnn::Tensor> calibration = calibration_inputs(o, shape);
      try {
        int8 = std::make_unique<cnn::QuantizedModel>(model.graph, calibration, o.quant);
      } catch (const cnn::Error& e) {
        throw cnn::Error("calibration inputs (" + o.calibrate + "): " + e.what());
      }
    }
    if (!o.save_int8.empty()) int8->save(o.save_int8, *file);
    if (o.summary) std::fputs(int8->report().c_str(), stdout);
  }
#ifdef FACECNN_HAVE_CUDA
  std::unique_ptr<cnn::cuda::Model> gpu;
  if (o.device == "cuda") gpu = std::make_unique<cnn::cuda::Model>(model.graph, cnn::cuda::parse_precision(o.precision));
  auto infer = [&](cnn::ConstTensorView x) {
    return gpu ? gpu->forward(x) : int8 ? int8->forward(x) : model.graph.forward(x);
  };
#else
  auto infer = [&](cnn::ConstTensorView x) { return int8 ? int8->forward(x) : model.graph.forward(x); };
#endif
  if (input.numel() == 0) return 0;

  std::vector<cnn::Tensor> outputs = infer(input.view());
  if (!o.output.empty()) {
    const auto names = model.graph.output_names();
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      std::string path = o.output;
      if (outputs.size() > 1) {
        const std::size_t dot = path.rfind(".npy");
        path = (dot != std::string::npos && dot + 4 == path.size() ? path.substr(0, dot) : path) + "." + names[k] + ".npy";
      }
      const cnn::Shape s = outputs[k].shape();
      std::vector<int64_t> dims{s.n, s.c, s.h, s.w};
      if (s.h == 1 && s.w == 1) dims = {s.n, s.c};
      cnn::write_npy(path, dims, outputs[k].data());
    }
  }
  if (o.profile) std::fputs((int8 ? int8->profile(input.view()) : model.graph.profile(input.view())).c_str(), stdout);
#ifdef FACECNN_HAVE_CUDA
  if (o.bench && gpu) {  // GPU time only: the input stays on the device, CUDA events around each run
    const cnn::cuda::DeviceTensor x = cnn::cuda::DeviceTensor::upload(input.view());
    const std::vector<double> ms = gpu->time_forward(x.view(), o.bench, 3);
    const cnn::cuda::DeviceInfo info = cnn::cuda::device_info();
    std::printf("{\"arch\":\"%s\",\"device\":\"cuda\",\"gpu\":\"%s\",\"precision\":\"%s\",\"batch\":%lld,"
                "\"input\":\"%lldx%lld\",\"runs\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f}\n",
                model.config.arch.c_str(), info.name.c_str(), o.precision.c_str(), (long long)shape.n,
                (long long)shape.h, (long long)shape.w, o.bench, median(ms), *std::min_element(ms.begin(), ms.end()));
    return 0;
  }
#endif
  if (o.bench) {
    std::vector<double> ms;
    for (int r = 0; r < o.bench; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      outputs = infer(input.view());
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("{\"arch\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"batch\":%lld,\"input\":\"%lldx%lld\",\"runs\":%d,"
                "\"median_ms\":%.3f,\"min_ms\":%.3f}\n",
                model.config.arch.c_str(), o.precision.c_str(), cnn::num_threads(), (long long)shape.n, (long long)shape.h,
                (long long)shape.w, o.bench, median(ms), *std::min_element(ms.begin(), ms.end()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  try {
    return run(o);
  } catch (const cnn::Error& e) {
    std::fprintf(stderr, "cnn-infer: error: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "cnn-infer: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cnn-infer: error: %s\n", e.what());
  }
  return 1;
}
