// The facecnn::cuda library, host part: cnn/cuda/model.hpp's definitions.
#include "cnn/cuda/model_impl.hpp"
