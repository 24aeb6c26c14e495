// vision/align.hpp - eye-based face alignment: find both eyes inside a detected face, rotate and
// scale so that they are level at fixed positions, crop at a fixed framing.
//
// The default framing reproduces the shared UTKFace "aligned & cropped" images the age/gender
// models train on: in those 200x200 crops OpenCV's eye cascade puts the eye centres at about
// (57, 58.5) and (135.5, 58.5) (mean of 283 crops, std ~5 px; tools/utk_framing.py measures it).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "cascade.hpp"
#include "image.hpp"
#include "transform.hpp"

namespace vision {

struct AlignParams {
  int size = 200;             // output is size x size
  float left_x = 0.2843f;     // eye centres in the output, as fractions of size
  float right_x = 0.6777f;
  float eye_y = 0.2927f;
  // Where eyes sit in a frontal-face cascade box (measured the same way) - the fallback when
  // the eye cascade finds neither eye.
  float box_left_x = 0.236f, box_right_x = 0.722f, box_eye_y = 0.320f;
  // Eye pairs that no frontal face has (the cascade also fires on eyebrows, nostrils, glasses'
  // rims) fall back to the box's positions: tilt above max_tilt_deg, or eyes closer than
  // min_eye_dist / farther than max_eye_dist times the box width.
  float max_tilt_deg = 25.f, min_eye_dist = 0.3f, max_eye_dist = 0.7f;
  // Where a CNN detector's five landmarks (eyes, nose tip, mouth corners, image left to right) sit
  // in the same framing, as fractions of size: YuNet's landmarks on UTKFace's own crops (median of
  // 2000 training crops, tools/utk_landmarks.py).
  float five_points[5][2] = {{0.2925f, 0.2880f}, {0.6825f, 0.2935f}, {0.4755f, 0.5005f}, {0.3140f, 0.6810f},
                             {0.6440f, 0.6860f}};
};

struct Eyes {
  float lx = 0, ly = 0, rx = 0, ry = 0;  // left = smaller x in the image
  bool left_found = false, right_found = false;
};

// Eyes inside `face`: the eye cascade runs over the upper part of the box; the best hit
// (most neighbours) in each half is kept. A missing eye is mirrored from the other across the
// box's vertical centre line; with none found the box's default positions are used.
inline Eyes find_eyes(const Image& grey_in, const Rect& face, const CascadeClassifier& eye_cascade,
                      const AlignParams& ap = {}) {
  const Image grey = to_grey(grey_in);
  Eyes e;
  e.lx = face.x + ap.box_left_x * face.w;
  e.rx = face.x + ap.box_right_x * face.w;
  e.ly = e.ry = face.y + ap.box_eye_y * face.h;
  Rect roi{face.x, face.y + face.h / 10, face.w, face.h / 2};
  roi.x = std::max(roi.x, 0);
  roi.y = std::max(roi.y, 0);
  roi.w = std::min(roi.w, grey.width() - roi.x);
  roi.h = std::min(roi.h, grey.height() - roi.y);
  if (roi.w < eye_cascade.window_width() || roi.h < eye_cascade.window_height()) return e;
  const Image part = crop(grey, roi);
  DetectParams p;
  p.scale_factor = 1.1;
  p.min_neighbors = 3;
  p.min_width = p.min_height = std::max(eye_cascade.window_width(), face.w / 8);
  p.max_width = p.max_height = std::max(p.min_width, face.w / 2);
  p.threads = 1;
  const float cx = face.x + face.w * 0.5f;
  int bl = -1, br = -1;
  for (const auto& d : eye_cascade.detect(part, p)) {
    const float ex = roi.x + d.box.x + d.box.w * 0.5f, ey = roi.y + d.box.y + d.box.h * 0.5f;
    if (ex < cx && d.neighbors > bl) { bl = d.neighbors; e.lx = ex; e.ly = ey; e.left_found = true; }
    if (ex >= cx && d.neighbors > br) { br = d.neighbors; e.rx = ex; e.ry = ey; e.right_found = true; }
  }
  if (e.left_found && !e.right_found) { e.rx = 2 * cx - e.lx; e.ry = e.ly; }
  if (e.right_found && !e.left_found) { e.lx = 2 * cx - e.rx; e.ly = e.ry; }
  const float dx = e.rx - e.lx, dy = e.ry - e.ly, dist = std::sqrt(dx * dx + dy * dy);
  const bool plausible = dist >= ap.min_eye_dist * face.w && dist <= ap.max_eye_dist * face.w &&
                         std::fabs(dy) <= std::tan(ap.max_tilt_deg * 3.14159265f / 180.f) * dx;
  if (!plausible) {
    Eyes box;
    box.lx = face.x + ap.box_left_x * face.w;
    box.rx = face.x + ap.box_right_x * face.w;
    box.ly = box.ry = face.y + ap.box_eye_y * face.h;
    return box;
  }
  return e;
}

// The similarity transform taking the eyes to their framing positions.
inline Affine alignment_transform(const Eyes& e, const AlignParams& ap = {}) {
  const double dx = e.rx - e.lx, dy = e.ry - e.ly;
  const double dist = std::max(1e-3, std::sqrt(dx * dx + dy * dy));
  const double want = (ap.right_x - ap.left_x) * ap.size;
  const double s = want / dist, ang = std::atan2(dy, dx);
  const double c = s * std::cos(-ang), si = s * std::sin(-ang);
  // x' = c*x - si*y + tx, y' = si*x + c*y + ty maps the left eye to its target
  Affine a;
  a.m[0] = c; a.m[1] = -si; a.m[3] = si; a.m[4] = c;
  a.m[2] = ap.left_x * ap.size - (c * e.lx - si * e.ly);
  a.m[5] = ap.eye_y * ap.size - (si * e.lx + c * e.ly);
  return a;
}

// The similarity transform (rotation, uniform scale, shift; no reflection) that takes the five
// landmarks closest, in least squares, to their framing positions (ap.five_points): the nose and
// mouth steady the fit where an eye is uncertain (closed, turned away, behind glasses).
inline Affine five_point_transform(const std::array<Point2f, 5>& pts, const AlignParams& ap = {}) {
  double mx = 0, my = 0, tx = 0, ty = 0;
  for (int k = 0; k < 5; ++k) {
    mx += pts[k].x, my += pts[k].y;
    tx += ap.five_points[k][0] * ap.size, ty += ap.five_points[k][1] * ap.size;
  }
  mx /= 5, my /= 5, tx /= 5, ty /= 5;
  // Minimise sum |[a -b; b a] (p - m) - (q - t)|^2 over a, b.
  double sxx = 0, sab = 0, sba = 0;
  for (int k = 0; k < 5; ++k) {
    const double px = pts[k].x - mx, py = pts[k].y - my;
    const double qx = ap.five_points[k][0] * ap.size - tx, qy = ap.five_points[k][1] * ap.size - ty;
    sxx += px * px + py * py;
    sab += px * qx + py * qy;
    sba += px * qy - py * qx;
  }
  sxx = std::max(sxx, 1e-9);
  const double a = sab / sxx, b = sba / sxx;
  Affine m;
  m.m[0] = a; m.m[1] = -b; m.m[3] = b; m.m[4] = a;
  m.m[2] = tx - (a * mx - b * my);
  m.m[5] = ty - (b * mx + a * my);
  return m;
}

// Aligned size x size crop (edges replicated where the frame leaves the image).
inline Image align_face(const Image& img, const Eyes& e, const AlignParams& ap = {}) {
  return warp_affine(img, alignment_transform(e, ap), ap.size, ap.size, 0, true);
}

}  // namespace vision
