// cnn/cnn.hpp — the one include for users of the engine.
//
//   #include <cnn/cnn.hpp>
//   cnn::Model model = cnn::load_model("resnet50.safetensors");
//   cnn::Tensor x(cnn::Shape{1, 3, 224, 224});             // fill with normalised pixels
//   std::vector<cnn::Tensor> outputs = model.graph.forward(x.view());
#pragma once
#include "error.hpp"
#include "graph.hpp"
#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "models/zoo.hpp"
#include "parallel.hpp"
#include "tensor.hpp"
