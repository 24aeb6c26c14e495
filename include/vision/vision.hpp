// vision/vision.hpp - one include for the whole vision library (namespace vision).
// Link target: facecnn::vision (links Debian's libstb for image I/O).
#pragma once
#include "image.hpp"
#include "image_io.hpp"
#include "transform.hpp"
#include "draw.hpp"
#include "integral.hpp"
#include "cascade.hpp"
#include "keypoints.hpp"
#include "lbp.hpp"
#include "align.hpp"
