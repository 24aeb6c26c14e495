// The facecnn::cuda library, CUDA part: the kernels and their launchers (cnn/cuda/launch.hpp).
#include "cnn/cuda/kernels.cuh"
