// Builds a small ResNet from the installed headers, runs it, and checks the output shape.
#include <cnn/cnn.hpp>
#include <cstdio>

int main() {
  cnn::ModelConfig c;
  c.arch = "resnet18";
  c.width = 0.25;
  c.num_classes = 3;
  cnn::Graph g = cnn::build_model(c);
  g.init_random(5);
  cnn::Tensor x(cnn::Shape{1, 3, 64, 64});
  cnn::Tensor y = g.forward_single(x.view());
  std::printf("consumer: output %s\n", y.shape().str().c_str());
  return y.shape() == cnn::Shape{1, 3, 1, 1} ? 0 : 1;
}
