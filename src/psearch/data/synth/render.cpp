#include "psearch/data/synth/render.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

namespace psearch::data::synth {
namespace {

constexpr uint16_t kOccluderId = 0xFFFF;

/// Something standing on the ground, drawn far (small foot row) to near.
struct Drawable {
  double foot;
  int person;                  ///< index into the frame's persons, or -1
  const Occluder* occluder;    ///< when person < 0
};

std::vector<Drawable> depth_order(const FramePlan& f, const CameraStyle& cam) {
  std::vector<Drawable> items;
  for (size_t i = 0; i < f.persons.size(); ++i) items.push_back({f.persons[i].body.br().y, int(i), nullptr});
  for (const auto& o : cam.fixed_occluders) items.push_back({o.foot_y, -1, &o});
  for (const auto& o : f.occluders) items.push_back({o.foot_y, -1, &o});
  std::stable_sort(items.begin(), items.end(), [](const Drawable& a, const Drawable& b) { return a.foot < b.foot; });
  return items;
}

/// Soft shadows under everyone's feet, darkening the ground by up to 30 %.
void draw_shadows(cv::Mat& image, const FramePlan& f) {
  cv::Mat mask = cv::Mat::zeros(image.size(), CV_8UC1);
  for (const auto& p : f.persons) {
    const cv::Point2d c(p.body.x + p.body.width / 2, p.body.br().y);
    const cv::Size axes(std::max(1, int(p.body.width * 0.6 * 16)), std::max(1, int(p.body.height * 0.04 * 16)));
    cv::ellipse(mask, cv::Point(int(c.x * 16), int(c.y * 16)), axes, 0, 0, 360, cv::Scalar(255), cv::FILLED,
                cv::LINE_AA, 4);
  }
  for (int y = 0; y < image.rows; ++y) {
    auto* row = image.ptr<cv::Vec3b>(y);
    const uchar* m = mask.ptr<uchar>(y);
    for (int x = 0; x < image.cols; ++x)
      if (m[x])
        for (int k = 0; k < 3; ++k) row[x][k] = cv::saturate_cast<uchar>(row[x][k] * (1.0 - 0.3 * m[x] / 255.0));
  }
}

/// Draws person `index` of `f` and returns the number of pixels of its silhouette.
int draw_person(const Plan& plan, const FramePlan& f, int index, cv::Mat& image, cv::Mat& ids) {
  const PersonInstance& p = f.persons[index];
  const Appearance& look = p.identity >= 0 ? plan.identities[p.identity].look : p.passerby;
  const int x0 = static_cast<int>(std::floor(p.body.x)), y0 = static_cast<int>(std::floor(p.body.y));
  const cv::Point2d offset(p.body.x - x0, p.body.y - y0);
  const cv::Size patch_size(static_cast<int>(std::ceil(offset.x + p.body.width)) + 2,
                            static_cast<int>(std::ceil(offset.y + p.body.height)) + 2);
  cv::Mat colour = cv::Mat::zeros(patch_size, CV_8UC3), alpha = cv::Mat::zeros(patch_size, CV_8UC1);
  render_person(look, p.pose, offset, p.body.size(), colour, alpha);
  // The patch may reach a pixel or two past the frame: clip both to the overlap.
  const cv::Rect where = cv::Rect(x0, y0, patch_size.width, patch_size.height) & cv::Rect(0, 0, image.cols, image.rows);
  const cv::Rect in_patch(where.x - x0, where.y - y0, where.width, where.height);
  int silhouette = 0;
  for (int y = 0; y < where.height; ++y) {
    auto* dst = image.ptr<cv::Vec3b>(where.y + y) + where.x;
    auto* id = ids.ptr<uint16_t>(where.y + y) + where.x;
    const auto* src = colour.ptr<cv::Vec3b>(in_patch.y + y) + in_patch.x;
    const uchar* a = alpha.ptr<uchar>(in_patch.y + y) + in_patch.x;
    for (int x = 0; x < where.width; ++x) {
      if (!a[x]) continue;
      for (int k = 0; k < 3; ++k) dst[x][k] = static_cast<uchar>((src[x][k] * a[x] + dst[x][k] * (255 - a[x]) + 127) / 255);
      if (a[x] >= 128) {
        id[x] = static_cast<uint16_t>(index + 1);
        ++silhouette;
      }
    }
  }
  return silhouette;
}

int count_visible(const cv::Mat& ids, const cv::Rect2d& body, int index) {
  const cv::Rect r = cv::Rect(cv::Point(int(std::floor(body.x)), int(std::floor(body.y))),
                              cv::Point(int(std::ceil(body.br().x)) + 2, int(std::ceil(body.br().y)) + 2)) &
                     cv::Rect(0, 0, ids.cols, ids.rows);
  int n = 0;
  for (int y = r.y; y < r.br().y; ++y) {
    const auto* id = ids.ptr<uint16_t>(y);
    for (int x = r.x; x < r.br().x; ++x) n += id[x] == index + 1;
  }
  return n;
}

}  // namespace

cv::Mat render_frame(const Plan& plan, FramePlan& f, const cv::Mat& background) {
  const CameraStyle& cam = plan.cameras[f.camera];
  cv::Mat image = background.clone();
  cv::Mat ids = cv::Mat::zeros(image.size(), CV_16UC1);
  draw_shadows(image, f);
  std::vector<int> silhouette(f.persons.size(), 0);
  for (const Drawable& d : depth_order(f, cam)) {
    if (d.person >= 0) silhouette[d.person] = draw_person(plan, f, d.person, image, ids);
    else draw_occluder(*d.occluder, image, ids, kOccluderId);
  }
  for (size_t i = 0; i < f.persons.size(); ++i)
    f.persons[i].visible =
        silhouette[i] > 0 ? double(count_visible(ids, f.persons[i].body, int(i))) / silhouette[i] : 0.0;
  if (f.blur > 0) cv::GaussianBlur(image, image, {0, 0}, f.blur);
  Rng rng(f.seed);
  apply_camera_response(image, cam.cast, f.brightness, f.noise, rng);
  return image;
}

std::vector<cv::Mat> render_backgrounds(const Plan& plan, int threads) {
  std::vector<cv::Mat> out(plan.cameras.size());
  parallel_for(out.size(), threads, [&](size_t i) { out[i] = render_background(plan.cameras[i]); });
  return out;
}

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& job,
                  const std::function<void(size_t)>& tick) {
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto worker = [&] {
    for (size_t i; !failed && (i = next++) < n;) {
      try {
        job(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
      ++done;
    }
  };
  const int count = std::max(1, std::min<int>(threads, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int t = 0; t < count; ++t) pool.emplace_back(worker);
  while (tick && done < n && !failed) {
    tick(done);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (tick) tick(done);
}

}  // namespace psearch::data::synth
