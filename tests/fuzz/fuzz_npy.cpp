// libFuzzer target: .npy parsing and the (N, C, H, W) tensor cnn-infer builds from it.
#include <cnn/cnn.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const cnn::NpyArray a = cnn::parse_npy(data, size, "fuzz.npy");
    int64_t n = 1;
    for (auto d : a.dims) n *= d;  // parse_npy promised a checked product
    if (uint64_t(n) != a.values.size()) __builtin_trap();
    const cnn::Tensor t = cnn::npy_to_nchw(a, "fuzz.npy");
    if (uint64_t(t.numel()) != a.values.size()) __builtin_trap();
    const std::string back = cnn::npy_bytes(a.dims, a.values.data());
    const cnn::NpyArray b = cnn::parse_npy(reinterpret_cast<const uint8_t*>(back.data()), back.size(), "back.npy");
    if (b.dims != a.dims) __builtin_trap();
  } catch (const cnn::Error&) {
  }
  return 0;
}
