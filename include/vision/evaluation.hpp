// vision/evaluation.hpp - the performance analysis of an age/gender run: manifests and
// predictions CSV files (formats in docs/agegender.md), gender metrics with male as the positive
// class, age-group exact / 1-off accuracy, MAE, the confusion matrix, coverage, calibration of the
// gender probability (ECE), and the same broken down by age band and (UTKFace names) by race.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "draw.hpp"
#include "face_pipeline.hpp"
#include "image.hpp"

namespace vision {

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180: comma separated, fields optionally in double quotes, "" inside quotes).

// Splits one line; false if a quoted field is not closed.
inline bool split_csv_line(const std::string& line, std::vector<std::string>& fields) {
  fields.assign(1, std::string());
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') { fields.back() += '"'; ++i; }
      else if (ch == '"') quoted = false;
      else fields.back() += ch;
    } else if (ch == '"') quoted = true;
    else if (ch == ',') fields.emplace_back();
    else if (ch != '\r') fields.back() += ch;
  }
  return !quoted;
}

inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// ---------------------------------------------------------------------------------------------
// Manifest: header `image,age,gender[,x,y,w,h]`, extra columns ignored. Age is years ("34"), a
// range ("30-39") or empty (not scored for age); gender is m, f or empty.

struct ManifestRow {
  int line = 0;
  std::string image;
  bool has_age = false;
  double age_lo = 0, age_hi = 0;  // equal for a single age
  char gender = 0;                // 'm', 'f' or 0 (unknown)
  bool has_box = false;
  Rect box;
  bool is_range() const { return has_age && age_hi > age_lo; }
  double age_mid() const { return 0.5 * (age_lo + age_hi); }
};

// Face box coordinates a manifest may hold (any real photo is far smaller): x + w and y + h fit
// in int, and w * h in int64.
constexpr int kMaxManifestCoordinate = 1 << 28;

struct Manifest {
  std::string path;
  std::vector<ManifestRow> rows;
};

inline bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end && *end == 0 && std::isfinite(v);
}

// Parses a manifest from a stream; `path` names it in errors. Throws vision::Error listing every
// malformed line ("M.csv:LINE: problem"), at most 20.
inline Manifest parse_manifest(std::istream& in, const std::string& path) {
  Manifest m;
  m.path = path;
  std::string line;
  std::vector<std::string> f;
  std::vector<std::string> errors;
  auto bad = [&](int ln, const std::string& what) {
    if (errors.size() < 20) errors.push_back(path + ":" + std::to_string(ln) + ": " + what);
    else if (errors.size() == 20) errors.push_back("... (more errors not shown)");
  };
  int col_image = -1, col_age = -1, col_gender = -1, col_box[4] = {-1, -1, -1, -1};
  int ln = 0;
  std::size_t ncols = 0;
  while (std::getline(in, line)) {
    ++ln;
    if (ln == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line = line.substr(3);  // BOM
    if (trim(line).empty() || trim(line) == "\r") continue;
    if (!split_csv_line(line, f)) { bad(ln, "unclosed quote"); continue; }
    for (auto& s : f) s = trim(s);
    if (col_image < 0) {  // the header
      for (std::size_t i = 0; i < f.size(); ++i) {
        const std::string& h = f[i];
        if (h == "image") col_image = int(i);
        else if (h == "age") col_age = int(i);
        else if (h == "gender") col_gender = int(i);
        else if (h == "x") col_box[0] = int(i);
        else if (h == "y") col_box[1] = int(i);
        else if (h == "w") col_box[2] = int(i);
        else if (h == "h") col_box[3] = int(i);
      }
      if (col_image < 0 || col_age < 0 || col_gender < 0)
        throw Error(path + ":" + std::to_string(ln) + ": header must name the columns image,age,gender (got '" + line + "')");
      const int nbox = int(std::count_if(col_box, col_box + 4, [](int c) { return c >= 0; }));
      if (nbox != 0 && nbox != 4) throw Error(path + ":" + std::to_string(ln) + ": a face box needs all of x,y,w,h");
      ncols = f.size();
      continue;
    }
    if (f.size() < ncols) { bad(ln, "has " + std::to_string(f.size()) + " fields, the header has " + std::to_string(ncols)); continue; }
    ManifestRow r;
    r.line = ln;
    r.image = f[std::size_t(col_image)];
    if (r.image.empty()) { bad(ln, "empty image path"); continue; }
    const std::string age = f[std::size_t(col_age)];
    if (!age.empty()) {
      const auto dash = age.find('-', 1);
      double lo = 0, hi = 0;
      const bool ok = dash == std::string::npos
                          ? parse_number(age, lo) && (hi = lo, true)
                          : parse_number(trim(age.substr(0, dash)), lo) && parse_number(trim(age.substr(dash + 1)), hi);
      if (!ok || lo < 0 || hi < lo || hi > 150) { bad(ln, "age '" + age + "' is not years (34) or a range (30-39)"); continue; }
      r.has_age = true;
      r.age_lo = lo;
      r.age_hi = hi;
    }
    const std::string g = f[std::size_t(col_gender)];
    if (g == "m" || g == "M") r.gender = 'm';
    else if (g == "f" || g == "F") r.gender = 'f';
    else if (!g.empty()) { bad(ln, "gender '" + g + "' is not m or f"); continue; }
    if (col_box[0] >= 0) {
      double v[4];
      bool ok = true;
      for (int k = 0; k < 4; ++k) ok = ok && parse_number(f[std::size_t(col_box[k])], v[k]);
      if (!ok || v[2] <= 0 || v[3] <= 0) { bad(ln, "face box x,y,w,h must be numbers with w,h > 0"); continue; }
      // Bounded before rounding to int, so that x + w and w * h stay exact (cnn/checked.hpp's rule).
      const double lim = double(kMaxManifestCoordinate);
      if (std::fabs(v[0]) > lim || std::fabs(v[1]) > lim || v[2] > lim || v[3] > lim) {
        bad(ln, "face box x,y,w,h beyond +-" + std::to_string(kMaxManifestCoordinate) + " pixels");
        continue;
      }
      r.has_box = true;
      r.box = Rect{int(std::lround(v[0])), int(std::lround(v[1])), int(std::lround(v[2])), int(std::lround(v[3]))};
      if (r.box.w <= 0 || r.box.h <= 0) { bad(ln, "face box w,h round to 0"); continue; }
      int64_t unused = 0;
      if (!cnn::checked::mul(r.box.w, r.box.h, int64_t(1) << 62, unused)) { bad(ln, "face box too large"); continue; }
    }
    m.rows.push_back(r);
  }
  if (col_image < 0) throw Error(path + ": empty manifest (no header line)");
  if (!errors.empty()) {
    std::string msg = "malformed manifest rows:";
    for (auto& e : errors) msg += "\n  " + e;
    throw Error(msg);
  }
  return m;
}

inline Manifest read_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open manifest");
  return parse_manifest(in, path);
}

// ---------------------------------------------------------------------------------------------
// Predictions: one per manifest row, same order.

struct Prediction {
  bool found = false;     // a face was found and classified
  bool unreadable = false;
  std::string error;      // why not, for the log
  AgeGender pred;
};

// Header `image,pred_age,pred_gender,pred_group,gender_prob,group_prob,age_low,age_high`: pred_age
// in whole years (inside pred_group's label), pred_gender m|f, pred_group the Adience label,
// gender_prob the probability of pred_gender, group_prob that of pred_group, age_low..age_high the
// plausible range (10th..90th percentile; decode_age). Empty when no face.
inline std::string predictions_csv(const Manifest& m, const std::vector<Prediction>& p) {
  std::string s = "image,pred_age,pred_gender,pred_group,gender_prob,group_prob,age_low,age_high\n";
  char buf[64];
  for (std::size_t i = 0; i < m.rows.size(); ++i) {
    s += csv_field(m.rows[i].image);
    if (p[i].found) {
      std::snprintf(buf, sizeof buf, ",%.0f,%c,", p[i].pred.age_years, p[i].pred.gender_char());
      s += buf;
      s += csv_field(age_group_label(p[i].pred.group));
      std::snprintf(buf, sizeof buf, ",%.4f,%.4f,%.0f,%.0f", p[i].pred.gender_confidence(), p[i].pred.group_prob(),
                    p[i].pred.age_low, p[i].pred.age_high);
      s += buf;
    } else {
      s += ",,,,,,,";
    }
    s += "\n";
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Metrics.

struct GenderMetrics {
  long tp = 0, tn = 0, fp = 0, fn = 0;  // male = positive
  static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }
  long n() const { return tp + tn + fp + fn; }
  double accuracy() const { return ratio(tp + tn, n()); }
  double precision() const { return ratio(tp, tp + fp); }
  double recall() const { return ratio(tp, tp + fn); }       // sensitivity, TPR
  double specificity() const { return ratio(tn, tn + fp); }  // TNR
  double npv() const { return ratio(tn, tn + fn); }
  double fpr() const { return ratio(fp, fp + tn); }
  double fnr() const { return ratio(fn, fn + tp); }
  double fdr() const { return ratio(fp, fp + tp); }
  double f1() const { return ratio(2.0 * tp, 2.0 * tp + fp + fn); }
  void add(char truth, char pred) {
    if (truth == 'm') (pred == 'm' ? tp : fn)++;
    else (pred == 'f' ? tn : fp)++;
  }
};

// Age bins: the 8 Adience groups, or the manifest's own ranges when its ages are ranges. A
// manifest with more than kMaxAgeRanges distinct ranges is scored on the Adience groups instead
// (the confusion matrix, its table and its image grow with the square of the bin count: 1500
// ranges made a 5.6 GB image); `distinct_ranges` keeps the count for the report's note.
constexpr int kMaxAgeRanges = 32;

struct AgeBins {
  std::vector<std::string> labels;
  std::vector<std::pair<double, double>> ranges;  // empty: Adience groups
  std::size_t distinct_ranges = 0;                // > kMaxAgeRanges: fell back to the Adience groups
  bool adience() const { return ranges.empty(); }
  bool too_many_ranges() const { return distinct_ranges > std::size_t(kMaxAgeRanges); }
  std::string fallback_note() const {
    return "The manifest has " + std::to_string(distinct_ranges) + " distinct age ranges, more than " +
           std::to_string(kMaxAgeRanges) + " (kMaxAgeRanges): ages are scored on the 8 Adience groups instead, each " +
           "range by its middle.";
  }
  int size() const { return int(labels.size()); }

  int of_truth(const ManifestRow& r) const {
    if (adience()) return age_group_of_years(r.age_mid());
    for (std::size_t i = 0; i < ranges.size(); ++i)
      if (ranges[i].first == r.age_lo && ranges[i].second == r.age_hi) return int(i);
    return of_years(r.age_mid());
  }
  int of_years(double y) const {  // the nearest range (distance 0 inside it)
    int best = 0;
    double bd = 1e300;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      // "30-39" covers [30, 40): 39.6 is inside, 40 belongs to the next range.
      const double lo = ranges[i].first, end = ranges[i].second + 1;
      const double d = y < lo ? lo - y : y >= end ? y - end + 1e-9 : 0;
      if (d < bd) { bd = d; best = int(i); }
    }
    return best;
  }
  int of_prediction(const AgeGender& p) const { return adience() ? p.group : of_years(p.age_years); }

  static AgeBins for_manifest(const Manifest& m) {
    AgeBins b;
    bool any_range = false;
    for (auto& r : m.rows) any_range = any_range || r.is_range();
    if (!any_range) {
      for (int g = 0; g < kAgeGroups; ++g) b.labels.push_back(age_group_label(g));
      return b;
    }
    for (auto& r : m.rows)
      if (r.has_age) b.ranges.push_back({r.age_lo, r.age_hi});
    std::sort(b.ranges.begin(), b.ranges.end());
    b.ranges.erase(std::unique(b.ranges.begin(), b.ranges.end()), b.ranges.end());
    b.distinct_ranges = b.ranges.size();
    if (b.too_many_ranges()) {
      b.ranges.clear();
      for (int g = 0; g < kAgeGroups; ++g) b.labels.push_back(age_group_label(g));
      return b;
    }
    for (auto& rg : b.ranges) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g-%g", rg.first, rg.second);
      b.labels.push_back(buf);
    }
    return b;
  }
};

struct AgeMetrics {
  long n = 0, exact = 0, one_off = 0;
  double abs_err = 0;
  double exact_acc() const { return n ? double(exact) / n : NAN; }
  double one_off_acc() const { return n ? double(one_off) / n : NAN; }
  double mae() const { return n ? abs_err / n : NAN; }
};

// One slice of the evaluation (all rows, or one age band / race).
struct SliceMetrics {
  long rows = 0, readable = 0, found = 0;
  GenderMetrics gender;
  AgeMetrics age;
  double coverage() const { return readable ? double(found) / readable : NAN; }
};

// UTKFace names: AGE_GENDER_RACE_DATE.jpg... -> race 0..4, or -1.
inline int utkface_race(const std::string& image) {
  const std::string base = image.substr(image.find_last_of('/') == std::string::npos ? 0 : image.find_last_of('/') + 1);
  int age, gender, race;
  char c;
  if (std::sscanf(base.c_str(), "%d_%d_%d%c", &age, &gender, &race, &c) == 4 && c == '_' && race >= 0 && race <= 4)
    return race;
  return -1;
}
inline const char* race_label(int r) {
  static const char* l[5] = {"White", "Black", "Asian", "Indian", "Other"};
  return r >= 0 && r < 5 ? l[r] : "unknown";
}

struct Evaluation {
  AgeBins bins;
  SliceMetrics all;
  std::vector<SliceMetrics> by_band;   // by the true age bin
  std::map<int, SliceMetrics> by_race;  // only for UTKFace names (-1: a name without race)
  std::vector<std::vector<long>> confusion;  // [true bin][predicted bin]
  long unreadable = 0, no_face = 0, gender_labelled = 0;
  // Calibration of the gender probability: confidence of the predicted gender in 10 bins.
  static constexpr int kCalBins = 10;
  long cal_n[kCalBins] = {}, cal_correct[kCalBins] = {};
  double cal_conf[kCalBins] = {};
  double ece() const {
    long n = 0;
    double e = 0;
    for (int b = 0; b < kCalBins; ++b) n += cal_n[b];
    for (int b = 0; b < kCalBins; ++b)
      if (cal_n[b]) e += std::fabs(double(cal_correct[b]) / cal_n[b] - cal_conf[b] / cal_n[b]) * cal_n[b] / n;
    return n ? e : NAN;
  }
};

inline Evaluation evaluate(const Manifest& m, const std::vector<Prediction>& preds) {
  Evaluation ev;
  ev.bins = AgeBins::for_manifest(m);
  const int K = ev.bins.size();
  ev.by_band.resize(std::size_t(K));
  ev.confusion.assign(std::size_t(K), std::vector<long>(std::size_t(K), 0));
  std::size_t named = 0;  // a race breakdown when (nearly) all names are UTKFace's
  for (auto& r : m.rows) named += utkface_race(r.image) >= 0;
  const bool utk = !m.rows.empty() && named * 10 >= m.rows.size() * 9;
  for (std::size_t i = 0; i < m.rows.size(); ++i) {
    const ManifestRow& r = m.rows[i];
    const Prediction& p = preds[i];
    const int band = r.has_age ? ev.bins.of_truth(r) : -1;
    std::vector<SliceMetrics*> slices{&ev.all};
    if (band >= 0) slices.push_back(&ev.by_band[std::size_t(band)]);
    if (utk) slices.push_back(&ev.by_race[utkface_race(r.image)]);
    if (p.unreadable) ++ev.unreadable;
    else if (!p.found) ++ev.no_face;
    if (r.gender) ++ev.gender_labelled;
    for (SliceMetrics* s : slices) {
      ++s->rows;
      if (p.unreadable) continue;
      ++s->readable;
      if (!p.found) continue;
      ++s->found;
      if (r.gender) s->gender.add(r.gender, p.pred.gender_char());
      if (r.has_age) {
        const int pb = ev.bins.of_prediction(p.pred);
        ++s->age.n;
        s->age.exact += pb == band;
        s->age.one_off += std::abs(pb - band) <= 1;
        // A range's error is measured from its middle.
        s->age.abs_err += std::fabs(double(p.pred.age_years) - r.age_mid());
      }
    }
    if (p.found && r.has_age) ++ev.confusion[std::size_t(band)][std::size_t(ev.bins.of_prediction(p.pred))];
    if (p.found && r.gender) {
      const double conf = p.pred.gender_confidence();
      const int b = std::min(Evaluation::kCalBins - 1, int(conf * Evaluation::kCalBins));
      ++ev.cal_n[b];
      ev.cal_conf[b] += conf;
      ev.cal_correct[b] += p.pred.gender_char() == r.gender;
    }
  }
  return ev;
}

// ---------------------------------------------------------------------------------------------
// Reports.

inline std::string fmt_pct(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * v);
  return b;
}
inline std::string fmt_num(double v, const char* f = "%.3f") {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// The analysis as Markdown (also readable as plain text on a terminal). `confusion_png` is the
// file name to link, or empty.
inline std::string report_markdown(const Evaluation& ev, const std::string& title, const std::string& confusion_png = "") {
  std::ostringstream o;
  const SliceMetrics& a = ev.all;
  const GenderMetrics& g = a.gender;
  o << "# " << title << "\n\n";
  o << "Rows " << a.rows << ", image read " << a.readable << ", unreadable " << ev.unreadable << ", no face found "
    << ev.no_face << "; coverage (face found / image read) " << fmt_pct(a.coverage()) << ".\n\n";
  o << "## Gender (male = positive), " << g.n() << " faces with a label\n\n";
  o << "| TP | TN | FP | FN | accuracy | precision | recall | specificity | NPV | FPR | FNR | FDR | F1 |\n";
  o << "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  o << "| " << g.tp << " | " << g.tn << " | " << g.fp << " | " << g.fn << " | " << fmt_pct(g.accuracy()) << " | "
    << fmt_pct(g.precision()) << " | " << fmt_pct(g.recall()) << " | " << fmt_pct(g.specificity()) << " | "
    << fmt_pct(g.npv()) << " | " << fmt_pct(g.fpr()) << " | " << fmt_pct(g.fnr()) << " | " << fmt_pct(g.fdr())
    << " | " << fmt_num(g.f1()) << " |\n\n";
  o << "Calibration of the gender probability: expected calibration error " << fmt_num(ev.ece(), "%.4f")
    << " (10 bins of the predicted gender's probability).\n\n";
  o << "| probability | faces | accuracy | mean probability |\n|---|---:|---:|---:|\n";
  for (int b = 0; b < Evaluation::kCalBins; ++b)
    if (ev.cal_n[b])
      o << "| " << fmt_num(b / 10.0, "%.1f") << "-" << fmt_num((b + 1) / 10.0, "%.1f") << " | " << ev.cal_n[b] << " | "
        << fmt_pct(double(ev.cal_correct[b]) / ev.cal_n[b]) << " | " << fmt_num(ev.cal_conf[b] / ev.cal_n[b]) << " |\n";
  if (a.age.n == 0) o << "\n## Age\n\nNo row has both an age and a face found.\n";
  else {
    o << "\n## Age, " << a.age.n << " faces with an age ("
      << (ev.bins.adience() ? "the 8 Adience groups" : "the manifest's own ranges") << ")\n\n";
    if (ev.bins.too_many_ranges()) o << ev.bins.fallback_note() << "\n\n";
    o << "| exact | 1-off | MAE (years) |\n|---:|---:|---:|\n";
    o << "| " << fmt_pct(a.age.exact_acc()) << " | " << fmt_pct(a.age.one_off_acc()) << " | " << fmt_num(a.age.mae(), "%.2f")
      << " |\n\n";
    o << "Confusion matrix (rows: true group, columns: predicted)";
    if (!confusion_png.empty()) o << ", also as [" << confusion_png << "](" << confusion_png << ")";
    o << ":\n\n| true \\ predicted |";
    for (auto& l : ev.bins.labels) o << " " << l << " |";
    o << "\n|---|";
    for (int k = 0; k < ev.bins.size(); ++k) o << "---:|";
    o << "\n";
    for (int t = 0; t < ev.bins.size(); ++t) {
      o << "| " << ev.bins.labels[std::size_t(t)] << " |";
      for (int p = 0; p < ev.bins.size(); ++p) o << " " << ev.confusion[std::size_t(t)][std::size_t(p)] << " |";
      o << "\n";
    }
  }
  auto slice_table = [&](const char* what, const std::vector<std::pair<std::string, const SliceMetrics*>>& rows) {
    o << "\n## By " << what << "\n\n| " << what
      << " | rows | coverage | gender acc. | age exact | age 1-off | MAE |\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (auto& [name, s] : rows)
      o << "| " << name << " | " << s->rows << " | " << fmt_pct(s->coverage()) << " | " << fmt_pct(s->gender.accuracy())
        << " | " << fmt_pct(s->age.exact_acc()) << " | " << fmt_pct(s->age.one_off_acc()) << " | "
        << fmt_num(s->age.mae(), "%.2f") << " |\n";
  };
  std::vector<std::pair<std::string, const SliceMetrics*>> rows;
  for (int k = 0; k < ev.bins.size(); ++k)
    if (ev.by_band[std::size_t(k)].rows) rows.push_back({ev.bins.labels[std::size_t(k)], &ev.by_band[std::size_t(k)]});
  if (!rows.empty()) slice_table("age band", rows);
  rows.clear();
  for (auto& [r, s] : ev.by_race) rows.push_back({race_label(r), &s});
  if (!rows.empty()) slice_table("race (UTKFace label)", rows);
  return o.str();
}

// The confusion matrix as a heat map: row-normalised shades, counts written in the cells.
inline Image confusion_image(const Evaluation& ev) {
  const int K = ev.bins.size(), cell = 44, left = 84, top = 40;
  if (K > std::max(kMaxAgeRanges, kAgeGroups))  // AgeBins never makes more; a hand-made one is refused
    throw Error("confusion_image: " + std::to_string(K) + " age bins, above the limit of " +
                std::to_string(std::max(kMaxAgeRanges, kAgeGroups)));
  Image img(left + K * cell + 10, top + K * cell + 30, 3);
  fill_rect(img, Rect{0, 0, img.width(), img.height()}, Color{255, 255, 255});
  draw_text(img, 4, 4, "true (rows) vs predicted (columns)", Color{0, 0, 0});
  for (int t = 0; t < K; ++t) {
    long row = 0;
    for (int p = 0; p < K; ++p) row += ev.confusion[std::size_t(t)][std::size_t(p)];
    draw_text(img, 4, top + t * cell + cell / 2 - 4, ev.bins.labels[std::size_t(t)], Color{0, 0, 0});
    for (int p = 0; p < K; ++p) {
      const long c = ev.confusion[std::size_t(t)][std::size_t(p)];
      const double share = row ? double(c) / row : 0;
      const auto shade = uint8_t(255 - std::lround(200 * share));
      const Rect r{left + p * cell, top + t * cell, cell - 2, cell - 2};
      fill_rect(img, r, Color{shade, shade, 255});
      draw_text(img, r.x + 4, r.y + cell / 2 - 6, std::to_string(c), share > 0.5 ? Color{255, 255, 255} : Color{0, 0, 0});
    }
  }
  for (int p = 0; p < K; ++p)
    draw_text(img, left + p * cell + 2, top + K * cell + 6, ev.bins.labels[std::size_t(p)].substr(0, 6), Color{0, 0, 0});
  return img;
}

}  // namespace vision
