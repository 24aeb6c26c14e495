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
#include "face_detector.hpp"  // the cascade and the CNN (YuNet) behind one interface
#include "face_pipeline.hpp"  // detect -> align -> classify (uses the CNN engine)
#include "evaluation.hpp"     // manifests, predictions, metrics, reports
