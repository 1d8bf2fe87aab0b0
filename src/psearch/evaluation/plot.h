#pragma once
/// Line plots drawn with OpenCV (axes, ticks, labels, legend), for the evaluator's
/// precision-recall and mAP-against-gallery-size figures. No plotting library needed.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace psearch::evaluation {

struct PlotSeries {
  std::string label;                 ///< legend entry (empty: not in the legend)
  std::vector<double> x, y;
  std::array<uint8_t, 3> bgr{180, 119, 31};  ///< blue
  bool markers = false;              ///< a dot at every point
  bool steps = false;                ///< steps: y[i] holds over (x[i-1], x[i]] (PR curves; the area is AP)
};

/// kAuto: the corner that covers the fewest points of the curves.
enum class LegendCorner { kAuto, kTopRight, kBottomLeft, kBottomRight, kTopLeft };

struct PlotSpec {
  std::string title, x_label, y_label;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  bool log_x = false;
  std::vector<double> x_ticks, y_ticks;  ///< empty: about 5 round values
  bool percent_ticks = false;            ///< tick labels as percentages of 1
  int width = 900, height = 650;
  LegendCorner legend = LegendCorner::kAuto;
};

/// Draws the series and writes a PNG to `path` (through a temporary file and a rename).
/// Throws std::runtime_error naming the path when it cannot be written.
void save_line_plot(const std::string& path, const PlotSpec& spec, const std::vector<PlotSeries>& series);

}  // namespace psearch::evaluation
