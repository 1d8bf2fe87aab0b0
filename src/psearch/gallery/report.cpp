#include "psearch/gallery/report.h"

#include <ATen/TensorOperators.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>

#include "psearch/data/image_io.h"
#include "psearch/data/video.h"
#include "psearch/gallery/indexer.h"
#include "psearch/util/atomic_file.h"

namespace psearch::gallery {
namespace fs = std::filesystem;
namespace {

std::vector<unsigned char> encode_jpeg(const cv::Mat& bgr) {
  std::vector<unsigned char> out;
  if (!cv::imencode(".jpg", bgr, out, {cv::IMWRITE_JPEG_QUALITY, 90}))
    throw std::runtime_error("cannot encode a JPEG");
  return out;
}

void draw_box(cv::Mat& bgr, const float box[4], int thickness) {
  cv::rectangle(bgr, cv::Point(static_cast<int>(box[0]), static_cast<int>(box[1])),
                cv::Point(static_cast<int>(box[2]), static_cast<int>(box[3])), cv::Scalar(40, 200, 255), thickness,
                cv::LINE_AA);
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string clock_time(double seconds) {
  const int64_t whole = static_cast<int64_t>(std::floor(seconds));
  std::ostringstream s;
  s << whole / 3600 << ":" << std::setw(2) << std::setfill('0') << (whole / 60) % 60 << ":" << std::setw(2)
    << whole % 60 << "." << static_cast<int>((seconds - whole) * 10);
  return s.str();
}

void write_jpeg(const std::string& path, const std::vector<unsigned char>& bytes) {
  util::write_bytes_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

constexpr const char* kStyle = R"CSS(
body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}
h1{font-size:20px} h2{font-size:16px;margin:24px 0 6px}
.query{display:flex;gap:16px;align-items:flex-start}
.query img{height:256px;border:2px solid #f90}
.hits{display:flex;flex-wrap:wrap;gap:10px}
.hit{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;font-size:12px;text-align:center}
.hit img{height:192px;display:block;margin:0 auto 4px}
.sim{font-weight:600}
svg{background:#fff;border:1px solid #ddd}
)CSS";

}  // namespace

std::map<std::pair<int64_t, int64_t>, at::Tensor> read_frames(const std::vector<DetectionRecord>& detections) {
  std::map<std::pair<int64_t, int64_t>, at::Tensor> frames;
  std::map<int64_t, std::set<int64_t>> video_frames;  // source id -> frames, read in order
  std::map<int64_t, std::string> video_paths;
  for (const DetectionRecord& d : detections) {
    const auto key = std::make_pair(d.source_id, d.frame);
    if (frames.count(key)) continue;
    const bool still = !d.image.empty() || is_image_path(d.source_path);  // a folder's image, or one image
    if (!still) {
      video_frames[d.source_id].insert(d.frame);
      video_paths[d.source_id] = d.source_path;
      continue;
    }
    try {
      frames[key] = data::read_image(d.image.empty() ? d.source_path : (fs::path(d.source_path) / d.image).string());
    } catch (const std::exception&) {  // moved or changed since indexing: shown as unavailable
    }
  }
  for (const auto& [source, wanted] : video_frames) {
    try {
      data::VideoReader video(video_paths[source]);
      data::VideoFrame frame;
      for (const int64_t index : wanted) {
        if (!video.skip_to(index) || !video.next(frame)) break;
        frames[{source, index}] = frame.image;
      }
    } catch (const std::exception&) {  // moved or changed since indexing: shown as unavailable
    }
  }
  return frames;
}

std::vector<unsigned char> crop_jpeg(const at::Tensor& image, const float box[4], int height) {
  cv::Mat bgr = data::bgr_image(image);
  const float w = box[2] - box[0], h = box[3] - box[1];
  // Some context around the person: a quarter of the box on each side.
  const int x1 = std::clamp(static_cast<int>(box[0] - 0.25f * w), 0, bgr.cols - 1);
  const int y1 = std::clamp(static_cast<int>(box[1] - 0.25f * h), 0, bgr.rows - 1);
  const int x2 = std::clamp(static_cast<int>(std::ceil(box[2] + 0.25f * w)), x1 + 1, bgr.cols);
  const int y2 = std::clamp(static_cast<int>(std::ceil(box[3] + 0.25f * h)), y1 + 1, bgr.rows);
  draw_box(bgr, box, 2);
  cv::Mat region = bgr(cv::Rect(x1, y1, x2 - x1, y2 - y1));
  cv::Mat scaled;
  const double scale = static_cast<double>(height) / region.rows;
  cv::resize(region, scaled, cv::Size(std::max(1, static_cast<int>(region.cols * scale)), height), 0, 0,
             scale > 1 ? cv::INTER_CUBIC : cv::INTER_AREA);
  return encode_jpeg(scaled);
}

std::vector<unsigned char> frame_jpeg(const at::Tensor& image, const float* box) {
  cv::Mat bgr = data::bgr_image(image);
  if (box) draw_box(bgr, box, 3);
  return encode_jpeg(bgr);
}

std::string write_report(const std::string& dir, const ReportQuery& query, const std::vector<SearchHit>& hits,
                         const std::string& gallery_path) {
  const fs::path images = fs::path(dir) / "images";
  fs::create_directories(images);
  write_jpeg((images / "query.jpg").string(), crop_jpeg(query.image, query.box));

  std::vector<DetectionRecord> records;
  for (const auto& hit : hits) records.push_back(hit.detection);
  const auto frames = read_frames(records);

  // Cameras in order of their best hit; each camera's hits along its time line.
  std::vector<std::string> cameras;
  std::map<std::string, std::vector<size_t>> by_camera;
  for (size_t i = 0; i < hits.size(); ++i) {
    const std::string& camera = hits[i].detection.camera;
    if (!by_camera.count(camera)) cameras.push_back(camera);
    by_camera[camera].push_back(i);
  }
  std::ostringstream html;
  html << std::fixed << std::setprecision(3);
  html << "<!doctype html><html><head><meta charset=\"utf-8\"><title>psearch: search report</title><style>" << kStyle
       << "</style></head><body>\n<h1>psearch search</h1>\n<div class=\"query\"><img src=\"images/query.jpg\" "
          "alt=\"query\"><div><p><b>Query:</b> "
       << html_escape(query.description) << "</p><p><b>Gallery:</b> " << html_escape(gallery_path) << "</p><p>"
       << hits.size() << " hits in " << cameras.size() << " camera(s), ranked by cosine similarity.</p></div></div>\n";
  for (const std::string& camera : cameras) {
    std::vector<size_t> order = by_camera[camera];
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return hits[a].detection.time < hits[b].detection.time; });
    double t0 = hits[order.front()].detection.time, t1 = hits[order.back()].detection.time;
    if (t1 - t0 < 1.0) t1 = t0 + 1.0;
    html << "<h2>Camera " << html_escape(camera) << " (" << order.size() << " hits, " << clock_time(t0) << " to "
         << clock_time(hits[order.back()].detection.time) << ")</h2>\n";
    // The time line: one mark per hit, taller for more similar ones.
    html << "<svg width=\"900\" height=\"46\" role=\"img\" aria-label=\"time line\">"
         << "<line x1=\"10\" y1=\"36\" x2=\"890\" y2=\"36\" stroke=\"#999\"/>";
    for (const size_t i : order) {
      const double x = 10 + 880 * (hits[i].detection.time - t0) / (t1 - t0);
      const double height = 6 + 24 * std::clamp(static_cast<double>(hits[i].similarity), 0.0, 1.0);
      html << "<line x1=\"" << x << "\" y1=\"36\" x2=\"" << x << "\" y2=\"" << 36 - height
           << "\" stroke=\"#e67e00\" stroke-width=\"3\"><title>#" << i + 1 << " " << clock_time(hits[i].detection.time)
           << " similarity " << hits[i].similarity << "</title></line>";
    }
    html << "<text x=\"10\" y=\"46\" font-size=\"10\">" << clock_time(t0) << "</text><text x=\"890\" y=\"46\" "
         << "font-size=\"10\" text-anchor=\"end\">" << clock_time(t1) << "</text></svg>\n<div class=\"hits\">\n";
    for (const size_t i : order) {
      const DetectionRecord& d = hits[i].detection;
      const std::string stem = "hit_" + std::to_string(i + 1);
      const auto frame = frames.find({d.source_id, d.frame});
      html << "<div class=\"hit\">";
      if (frame != frames.end()) {
        write_jpeg((images / (stem + ".jpg")).string(), crop_jpeg(frame->second, d.box, 192));
        write_jpeg((images / (stem + "_frame.jpg")).string(), frame_jpeg(frame->second, d.box));
        html << "<a href=\"images/" << stem << "_frame.jpg\"><img src=\"images/" << stem << ".jpg\" alt=\"hit "
             << i + 1 << "\"></a>";
      } else {
        html << "<p>(frame unavailable)</p>";
      }
      html << "<span class=\"sim\">#" << i + 1 << " &middot; " << hits[i].similarity << "</span><br>"
           << clock_time(d.time) << " &middot; frame " << d.frame << "<br>"
           << html_escape(d.image.empty() ? fs::path(d.source_path).filename().string() : d.image) << " &middot; id "
           << d.id << "</div>\n";
    }
    html << "</div>\n";
  }
  if (hits.empty()) html << "<p>No detection passed the filters.</p>\n";
  html << "</body></html>\n";
  const std::string path = (fs::path(dir) / "report.html").string();
  util::write_text_atomically(path, html.str());
  return path;
}

}  // namespace psearch::gallery
