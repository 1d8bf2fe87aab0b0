// libFuzzer target: arbitrary text as PRW's query_info.txt, parsed without touching files.
// A malformed line must raise std::exception naming "<source>:<line>"; anything else is a
// finding. Parsed lines are checked against the parser's own promises.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "psearch/data/prw.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto lines = psearch::data::parse_prw_query_info(text, "query_info.txt");
    int previous = 0;
    for (const auto& q : lines) {
      // Promises of the parser: increasing line numbers, a labeled id, finite values, a
      // box with area, a frame name without separators or control characters.
      if (q.line <= previous || q.pid < 0 || q.xywh[2] <= 0 || q.xywh[3] <= 0 || q.frame.empty()) std::abort();
      for (double v : q.xywh) {
        if (!std::isfinite(v)) std::abort();
      }
      for (unsigned char c : q.frame) {
        if (c < 0x20 || c == '/' || c == '\\' || c == 0x7f) std::abort();
      }
      const auto box = psearch::data::prw_corner_box(q.xywh[0], q.xywh[1], q.xywh[2], q.xywh[3]);
      if (box[0] < 0 || box[1] < 0 || box[2] < box[0] || box[3] < box[1]) std::abort();
      previous = q.line;
    }
  } catch (const std::exception& e) {
    if (std::string(e.what()).rfind("query_info.txt:", 0) != 0) std::abort();  // must name file and line
  }
  return 0;
}
