#include "psearch/evaluation/plot.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string_view>

#include "psearch/util/atomic_file.h"

namespace psearch::evaluation {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kBlack(0, 0, 0), kGrid(225, 225, 225), kWhite(255, 255, 255);

std::vector<double> round_ticks(double lo, double hi) {
  const double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) { step = m * mag; break; }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * span; t += step) ticks.push_back(t);
  return ticks;
}

std::string tick_text(double v, bool percent) {
  char buf[32];
  if (percent) {
    std::snprintf(buf, sizeof(buf), "%g%%", std::round(v * 1000) / 10 + 0.0);  // + 0.0: no "-0"
  } else {
    std::snprintf(buf, sizeof(buf), "%g", v);
  }
  return buf;
}

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale, int thickness, int align_x, int align_y,
          const cv::Scalar& colour = kBlack) {
  int base = 0;
  const cv::Size size = cv::getTextSize(s, kFont, scale, thickness, &base);
  // align: -1 left/top, 0 centre, 1 right/bottom (at is the anchor)
  const int x = at.x - (align_x + 1) * size.width / 2;
  const int y = at.y + (1 - align_y) * size.height / 2;
  cv::putText(img, s, {x, y}, kFont, scale, colour, thickness, cv::LINE_AA);
}

}  // namespace

void save_line_plot(const std::string& path, const PlotSpec& spec, const std::vector<PlotSeries>& series) {
  cv::Mat img(spec.height, spec.width, CV_8UC3, kWhite);
  const int left = 95, right = 30, top = 60, bottom = 80;
  const cv::Rect area(left, top, spec.width - left - right, spec.height - top - bottom);
  const auto fx = [&](double x) {
    const double t = spec.log_x ? (std::log(x) - std::log(spec.x_min)) / (std::log(spec.x_max) - std::log(spec.x_min))
                                : (x - spec.x_min) / (spec.x_max - spec.x_min);
    return area.x + t * area.width;
  };
  const auto fy = [&](double y) { return area.y + area.height - (y - spec.y_min) / (spec.y_max - spec.y_min) * area.height; };
  const auto pt = [&](double x, double y) {
    return cv::Point(static_cast<int>(std::lround(fx(x) * 16)), static_cast<int>(std::lround(fy(y) * 16)));
  };
  constexpr int kShift = 4;  // sub-pixel drawing: coordinates in 1/16 pixel

  const std::vector<double> xt = spec.x_ticks.empty() ? round_ticks(spec.x_min, spec.x_max) : spec.x_ticks;
  const std::vector<double> yt = spec.y_ticks.empty() ? round_ticks(spec.y_min, spec.y_max) : spec.y_ticks;
  for (double t : xt) {
    if (t < spec.x_min - 1e-12 || t > spec.x_max + 1e-12) continue;
    const int x = static_cast<int>(std::lround(fx(t)));
    cv::line(img, {x, area.y}, {x, area.y + area.height}, kGrid, 1);
    cv::line(img, {x, area.y + area.height}, {x, area.y + area.height + 6}, kBlack, 1);
    text(img, tick_text(t, spec.percent_ticks && !spec.log_x), {x, area.y + area.height + 20}, 0.5, 1, 0, 0);
  }
  for (double t : yt) {
    const int y = static_cast<int>(std::lround(fy(t)));
    cv::line(img, {area.x, y}, {area.x + area.width, y}, kGrid, 1);
    cv::line(img, {area.x - 6, y}, {area.x, y}, kBlack, 1);
    text(img, tick_text(t, spec.percent_ticks), {area.x - 10, y}, 0.5, 1, 1, 0);
  }
  cv::rectangle(img, area, kBlack, 1);

  // Series, clipped to the plot area.
  cv::Mat canvas = img(area);
  for (const auto& s : series) {
    const cv::Scalar colour(s.bgr[0], s.bgr[1], s.bgr[2]);
    std::vector<cv::Point> points;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      cv::Point p = pt(s.x[i], s.y[i]) - cv::Point(area.x * 16, area.y * 16);
      if (s.steps && !points.empty()) points.emplace_back(points.back().x, p.y);  // (r_prev, r] at p
      points.push_back(p);
    }
    if (points.size() > 1) cv::polylines(canvas, points, false, colour, 2, cv::LINE_AA, kShift);
    if (s.markers)
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
        cv::circle(canvas, pt(s.x[i], s.y[i]) - cv::Point(area.x * 16, area.y * 16), 5 * 16, colour, cv::FILLED,
                   cv::LINE_AA, kShift);
  }

  // Title and axis labels (the y label rotated).
  text(img, spec.title, {spec.width / 2, top / 2}, 0.7, 2, 0, 0);
  text(img, spec.x_label, {area.x + area.width / 2, spec.height - 25}, 0.6, 1, 0, 0);
  if (!spec.y_label.empty()) {
    int base = 0;
    const cv::Size size = cv::getTextSize(spec.y_label, kFont, 0.6, 1, &base);
    cv::Mat label(size.height + base + 8, size.width + 8, CV_8UC3, kWhite);
    cv::putText(label, spec.y_label, {4, size.height + 4}, kFont, 0.6, kBlack, 1, cv::LINE_AA);
    cv::rotate(label, label, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int x = 12, y = std::max(0, area.y + area.height / 2 - label.rows / 2);
    if (x + label.cols <= img.cols && y + label.rows <= img.rows) label.copyTo(img(cv::Rect(x, y, label.cols, label.rows)));
  }

  // Legend.
  std::vector<const PlotSeries*> entries;
  for (const auto& s : series)
    if (!s.label.empty()) entries.push_back(&s);
  if (!entries.empty()) {
    int width = 0;
    for (const auto* s : entries) {
      int base = 0;
      width = std::max(width, cv::getTextSize(s->label, kFont, 0.55, 1, &base).width);
    }
    const int row = 26, box_w = width + 70, box_h = static_cast<int>(entries.size()) * row + 14;
    const auto origin = [&](LegendCorner c) {
      const bool right_side = c == LegendCorner::kTopRight || c == LegendCorner::kBottomRight;
      const bool top_side = c == LegendCorner::kTopRight || c == LegendCorner::kTopLeft;
      return cv::Point(right_side ? area.x + area.width - box_w - 12 : area.x + 12,
                       top_side ? area.y + 12 : area.y + area.height - box_h - 12);
    };
    LegendCorner corner = spec.legend;
    if (corner == LegendCorner::kAuto) {
      // The corner whose box covers the fewest samples along the drawn curves.
      size_t best = SIZE_MAX;
      for (LegendCorner c : {LegendCorner::kTopRight, LegendCorner::kBottomRight, LegendCorner::kBottomLeft,
                             LegendCorner::kTopLeft}) {
        const cv::Rect box(origin(c), cv::Size(box_w, box_h));
        size_t covered = 0;
        for (const auto& s : series)
          for (size_t i = 0; i + 1 < s.x.size() && i + 1 < s.y.size(); ++i)
            for (int k = 0; k <= 20; ++k) {
              const double t = k / 20.0;
              const double x = fx(s.x[i]) * (1 - t) + fx(s.x[i + 1]) * t;
              const double y = s.steps ? fy(s.y[i + 1]) : fy(s.y[i]) * (1 - t) + fy(s.y[i + 1]) * t;
              covered += box.contains(cv::Point(static_cast<int>(x), static_cast<int>(y)));
            }
        if (covered < best) {
          best = covered;
          corner = c;
        }
      }
    }
    const int x0 = origin(corner).x, y0 = origin(corner).y;
    cv::rectangle(img, {x0, y0, box_w, box_h}, kWhite, cv::FILLED);
    cv::rectangle(img, {x0, y0, box_w, box_h}, cv::Scalar(150, 150, 150), 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      const cv::Scalar colour(entries[i]->bgr[0], entries[i]->bgr[1], entries[i]->bgr[2]);
      const int y = y0 + 7 + row / 2 + static_cast<int>(i) * row;
      cv::line(img, {x0 + 10, y}, {x0 + 45, y}, colour, 2, cv::LINE_AA);
      if (entries[i]->markers) cv::circle(img, {x0 + 27, y}, 5, colour, cv::FILLED, cv::LINE_AA);
      text(img, entries[i]->label, {x0 + 55, y}, 0.55, 1, -1, 0);
    }
  }

  std::vector<uchar> png;
  if (!cv::imencode(".png", img, png)) throw std::runtime_error(path + ": cannot encode the plot as PNG");
  util::write_bytes_atomically(path, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
}

}  // namespace psearch::evaluation
