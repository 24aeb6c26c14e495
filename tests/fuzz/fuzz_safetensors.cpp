// libFuzzer target: safetensors parsing, reading every tensor, and building + loading a model from
// the file's metadata (config or graph), as cnn-infer and the apps do, then its int8 form
// (metadata "quantization", cnn/quantize.hpp) run once on a small image. Every input must either
// load or throw cnn::Error; anything else (crash, sanitizer report, other exception) is a finding.
#include <cnn/cnn.hpp>
#include <cnn/quantize.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const cnn::SafeTensors st = cnn::SafeTensors::from_memory("fuzz.safetensors", std::vector<uint8_t>(data, data + size));
    std::vector<float> v;
    for (const std::string& n : st.names()) {
      (void)st.dims(n);
      try {
        if (st.entry(n).dtype == "I8") (void)st.read_int8(n);
        else st.read(n, v);
      } catch (const cnn::Error&) {
      }
    }
    cnn::Model m = cnn::load_model(st);
    if (st.meta("quantization").empty()) return 0;
    cnn::QuantizedModel q(m.graph, st);
    cnn::Tensor x(cnn::Shape{1, 3, 8, 8});
    (void)q.forward(x.view());
  } catch (const cnn::Error&) {
  }
  return 0;
}
