// vision/precision.hpp - the precision a vision network runs in: fp32, or int8 (cnn/quantize.hpp).
//
// A network's int8 form lives in its own weights file (QuantizedModel::save adds it), so the apps'
// `--precision int8` needs no calibration at run time; `--calibrate DIR --save-int8 OUT` makes one.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <cnn/quantize.hpp>

namespace vision {

class Int8Form {
 public:
  bool active() const { return q_ != nullptr; }
  // The int8 form stored in `path`, the file `graph` was loaded from.
  void load(cnn::Graph& graph, const std::string& path) {
    q_ = std::make_unique<cnn::QuantizedModel>(graph, cnn::SafeTensors::open(path));
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
