// libFuzzer target: safetensors parsing, reading every tensor, and building + loading a model from
// the file's metadata (config or graph), as cnn-infer and the apps do. Every input must either load
// or throw cnn::Error; anything else (crash, sanitizer report, other exception) is a finding.
#include <cnn/cnn.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const cnn::SafeTensors st = cnn::SafeTensors::from_memory("fuzz.safetensors", std::vector<uint8_t>(data, data + size));
    std::vector<float> v;
    for (const std::string& n : st.names()) {
      (void)st.dims(n);
      try {
        st.read(n, v);
      } catch (const cnn::Error&) {
      }
    }
    cnn::Model m = cnn::load_model(st);
    (void)m;
  } catch (const cnn::Error&) {
  }
  return 0;
}
