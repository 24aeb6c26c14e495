// libFuzzer target: manifest CSV parsing, the performance analysis with made-up predictions (derived
// from the input bytes), the Markdown report and the confusion image, written into a temp dir as
// `agegender --report` does.
#include <unistd.h>

#include <cnn/io/file.hpp>
#include <sstream>
#include <vision/evaluation.hpp>
#include <vision/image_io.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    char t[] = "/tmp/fuzz_manifest.XXXXXX";
    const char* d = mkdtemp(t);
    return std::string(d ? d : "/tmp");
  }();
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  vision::Manifest m;
  try {
    m = vision::parse_manifest(in, "fuzz.csv");
  } catch (const vision::Error&) {
    return 0;
  }
  std::vector<vision::Prediction> preds(m.rows.size());
  for (size_t i = 0; i < preds.size(); ++i) {
    const uint8_t b = size ? data[(i * 7) % size] : 0;
    vision::Prediction& p = preds[i];
    p.unreadable = (b & 7) == 0;
    p.found = !p.unreadable && (b & 7) != 1;
    p.pred.p_male = float(b) / 255.f;
    p.pred.group = b % vision::kAgeGroups;
    p.pred.age_years = float(b % 101);
    // the IoU the app uses to pick a face for a row with a box
    if (m.rows[i].has_box) (void)vision::iou(m.rows[i].box, vision::Rect{10, 10, 50, 60});
  }
  const vision::Evaluation ev = vision::evaluate(m, preds);
  const std::string md = vision::report_markdown(ev, "fuzz", "fuzz_confusion.png");
  cnn::write_file_atomic(dir + "/report.md", md);
  (void)vision::predictions_csv(m, preds);
  if (ev.all.age.n > 0) vision::save_image(dir + "/fuzz_confusion.png", vision::confusion_image(ev));
  return 0;
}
