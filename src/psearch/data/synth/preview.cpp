#include "psearch/data/synth/preview.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <set>
#include <string>

#include "psearch/data/synth/writers.h"

namespace psearch::data::synth {
namespace {

constexpr int kTileWidth = 320, kTileHeight = 240, kCaption = 22, kColumns = 3;

bool has_labeled(const FramePlan& f) {
  return std::any_of(f.persons.begin(), f.persons.end(), [](const PersonInstance& p) { return p.identity >= 0; });
}

/// One frame scaled into a tile, boxes and caption drawn at tile resolution so that
/// they stay legible for tiny frames.
cv::Mat tile(const Plan& plan, const FramePlan& f, const cv::Mat& image) {
  cv::Mat out(kTileHeight + kCaption, kTileWidth, CV_8UC3, cv::Scalar(40, 40, 40));
  const double s = std::min(double(kTileWidth) / image.cols, double(kTileHeight) / image.rows);
  cv::Mat scaled;
  cv::resize(image, scaled, {int(image.cols * s), int(image.rows * s)}, 0, 0, cv::INTER_LINEAR);
  const cv::Point origin((kTileWidth - scaled.cols) / 2, kCaption);
  scaled.copyTo(out(cv::Rect(origin, scaled.size())));
  for (const auto& p : f.persons) {
    const cv::Rect r(origin.x + int(p.box.x * s), origin.y + int(p.box.y * s), int(p.box.width * s),
                     int(p.box.height * s));
    const bool labeled = p.identity >= 0;
    const cv::Scalar colour = !labeled ? cv::Scalar(0, 220, 255) : is_hard(p) ? cv::Scalar(0, 140, 255)
                                                                               : cv::Scalar(60, 220, 60);
    cv::rectangle(out, r, colour, labeled ? 2 : 1);
    if (labeled)
      cv::putText(out, std::to_string(plan.identities[p.identity].pid), r.tl() + cv::Point(2, 12),
                  cv::FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv::LINE_AA);
  }
  const std::string caption = f.name + "  cam " + std::to_string(f.camera + 1) + (f.test ? "  test" : "  train") +
                              (has_labeled(f) ? "" : "  distractor");
  cv::putText(out, caption, {6, 16}, cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(230, 230, 230), 1, cv::LINE_AA);
  return out;
}

}  // namespace

std::vector<size_t> preview_frames(const Plan& plan, size_t count) {
  std::vector<size_t> chosen;
  std::set<int> cameras;
  for (size_t i = 0; i < plan.frames.size() && chosen.size() + 1 < count; ++i)
    if (plan.frames[i].test && has_labeled(plan.frames[i]) && plan.frames[i].persons.size() >= 2 &&
        cameras.insert(plan.frames[i].camera).second)
      chosen.push_back(i);
  for (size_t i = 0; i < plan.frames.size() && chosen.size() < count; ++i)
    if (!has_labeled(plan.frames[i])) {
      chosen.push_back(i);
      break;
    }
  for (size_t i = 0; i < plan.frames.size() && chosen.size() < count; ++i)
    if (std::find(chosen.begin(), chosen.end(), i) == chosen.end()) chosen.push_back(i);
  return chosen;
}

cv::Mat contact_sheet(const Plan& plan, const std::vector<size_t>& frames, const std::vector<cv::Mat>& images) {
  const int rows = std::max<int>(1, (static_cast<int>(frames.size()) + kColumns - 1) / kColumns);
  const int th = kTileHeight + kCaption;
  cv::Mat sheet(rows * th + (rows + 1) * 4, kColumns * kTileWidth + (kColumns + 1) * 4, CV_8UC3, cv::Scalar(20, 20, 20));
  for (size_t k = 0; k < frames.size(); ++k) {
    const int r = static_cast<int>(k) / kColumns, c = static_cast<int>(k) % kColumns;
    tile(plan, plan.frames[frames[k]], images[k]).copyTo(sheet(cv::Rect(4 + c * (kTileWidth + 4), 4 + r * (th + 4), kTileWidth, th)));
  }
  return sheet;
}

}  // namespace psearch::data::synth
