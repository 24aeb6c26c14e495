// vision/precision.hpp - the precision a vision network runs in: fp32, or int8 (cnn/quantize.hpp).
//
// A network's int8 form lives in its own weights file (QuantizedModel::save adds it), so the apps'
// `--precision int8` needs no calibration at run time; `--calibrate DIR --save-int8 OUT` makes one.
// The apps' default, Precision::Auto, runs a network in int8 where its file holds an int8 form that
// converts any layer (the bundled age/gender models), in fp32 otherwise (YuNet's form keeps every
// layer fp32: docs/int8.md).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <cnn/quantize.hpp>

namespace vision {

// Int8: the stored int8 form, an error naming the file if it has none. Auto: that form where the
// file holds one with at least one int8 layer, else fp32 (a broken form is an error all the same).
enum class Precision { Auto, FP32, Int8 };

class Int8Form {
 public:
  bool active() const { return q_ != nullptr; }
  // Runs `graph` (loaded from `path`) in precision `p` from now on: fp32, or the int8 form stored
  // in `path`; returns whether in int8.
  bool select(cnn::Graph& graph, const std::string& path, Precision p) {
    q_.reset();
    if (p == Precision::FP32) return false;
    const cnn::SafeTensors file = cnn::SafeTensors::open(path);
    if (p == Precision::Auto && file.meta("quantization").empty()) return false;
    auto q = std::make_unique<cnn::QuantizedModel>(graph, file);
    if (p == Precision::Auto && q->int8_layers() == 0) return false;
    q_ = std::move(q);
    return true;
  }
  // A new int8 form calibrated on `inputs` (the network's own input tensors).
  void calibrate(cnn::Graph& graph, const std::vector<cnn::Tensor>& inputs, const cnn::QuantizeOptions& opt) {
    q_ = std::make_unique<cnn::QuantizedModel>(graph, inputs, opt);
  }
  // Writes `path` again as `out` with the int8 form added.
  void save(const std::string& out, const std::string& path) const {
    if (!q_) throw cnn::Error("no int8 form to save: calibrate first");
    q_->save(out, cnn::SafeTensors::open(path));
  }
  std::string report() const { return q_ ? q_->report() : std::string(); }
  // The network's outputs, in int8 when the form is active.
  std::vector<cnn::Tensor> forward(cnn::Graph& graph, cnn::ConstTensorView x) {
    return q_ ? q_->forward(x) : graph.forward(x);
  }

 private:
  std::unique_ptr<cnn::QuantizedModel> q_;
};

}  // namespace vision
