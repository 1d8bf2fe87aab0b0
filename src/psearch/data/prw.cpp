#include "psearch/data/prw.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "psearch/data/loader_util.h"
#include "psearch/data/mat_file.h"
#include "psearch/util/strings.h"

namespace psearch::data {
namespace {

using detail::join_path;
using detail::quote_name;

constexpr double kUnlabeledId = -2.0;
const std::vector<std::string> kAnnotationVariables = {"box_new", "anno_file", "anno_previous"};

/// "c1s1_000151" or "c1s1_000151.jpg" -> "c1s1_000151.jpg".
std::string image_name(const std::string& frame) { return util::ends_with(frame, ".jpg") ? frame : frame + ".jpg"; }

/// Reads the frames of one split with their boxes. Labeled boxes carry their raw PRW id.
std::vector<ImageRecord> load_frames(const std::string& root, const std::string& list_file, const std::string& variable,
                                     LoadSummary& summary) {
  const std::string list_path = join_path(root, list_file);
  detail::require_file(list_path, "the PRW frame list, variable " + variable);
  const std::vector<std::string> frames = read_prw_frame_list(list_path, variable);
  std::vector<ImageRecord> images;
  images.reserve(frames.size());
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < frames.size(); ++i) {
    ImageRecord image;
    image.name = image_name(frames[i]);
    if (!seen.emplace(image.name, i).second) {
      throw std::runtime_error(list_path + ": frame " + quote_name(frames[i]) + " is listed twice (" + variable + "{" +
                               std::to_string(i + 1) + "})");
    }
    image.path = join_path(root, "frames/" + image.name);
    image.camera = prw_camera_id(image.name);
    const std::string anno_path = join_path(root, "annotations/" + image.name + ".mat");
    detail::require_file(anno_path, "the PRW annotation of frame " + image.name + " (listed in " + list_file + ")");
    if (!detail::is_regular_file(image.path)) {
      throw std::runtime_error(image.path + ": image file not found (listed in " + list_file + ")");
    }
    for (const PrwAnnotationRow& row : read_prw_annotation(anno_path)) {
      const auto& r = row.xywh;
      const Box box = prw_corner_box(r[0], r[1], r[2], r[3]);
      if (r[2] <= 0 || r[3] <= 0 || box[2] <= box[0] || box[3] <= box[1]) {
        ++summary.skipped_degenerate_boxes;
        continue;
      }
      PersonBox person;
      person.box = box;
      person.pid = row.id == kUnlabeledId ? kUnlabeled : static_cast<int64_t>(row.id);
      image.persons.push_back(person);
      ++summary.boxes;
    }
    ++summary.images;
    images.push_back(std::move(image));
  }
  return images;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

/// Strict number syntax: digits, sign, '.', exponent; no "inf", "nan" or hex.
bool parse_double(std::string_view token, double* out) {
  if (token.empty() || token.size() > 64) return false;
  for (char c : token) {
    if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E')) return false;
  }
  const std::string copy(token);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool parse_int(std::string_view token, int64_t* out) {
  if (token.empty()) return false;
  const char* first = token.data();
  const char* last = token.data() + token.size();
  if (*first == '+') ++first;
  const auto result = std::from_chars(first, last, *out);
  return result.ec == std::errc() && result.ptr == last && first != last;
}

}  // namespace

// ---------------------------------------------------------------------------------------

int prw_camera_id(const std::string& frame_name) {
  for (size_t i = 0; i + 1 < frame_name.size(); ++i) {
    if (frame_name[i] == 'c' && frame_name[i + 1] >= '0' && frame_name[i + 1] <= '9') return frame_name[i + 1] - '0';
  }
  return -1;
}

Box prw_corner_box(double x, double y, double w, double h) {
  const double corners[4] = {x, y, x + w, y + h};
  Box box{};
  for (int i = 0; i < 4; ++i) box[i] = static_cast<float>(std::trunc(std::max(corners[i], 0.0)));
  return box;
}

std::vector<PrwQueryLine> parse_prw_query_info(std::string_view text, const std::string& source) {
  std::vector<PrwQueryLine> out;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  int line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    while (!line.empty() && (line.back() == '\r' || is_space(line.back()))) line.remove_suffix(1);
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    if (line.empty()) continue;
    const std::string where = source + ":" + std::to_string(line_number) + ": ";
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < line.size() && fields.size() <= 6) {
      while (i < line.size() && is_space(line[i])) ++i;
      size_t j = i;
      while (j < line.size() && !is_space(line[j])) ++j;
      if (j > i) fields.push_back(line.substr(i, j - i));
      i = j;
    }
    if (fields.size() != 6) {
      throw std::runtime_error(where + "expected 6 fields 'pid x y w h frame', found " +
                               (fields.size() > 6 ? std::string("more") : std::to_string(fields.size())));
    }
    PrwQueryLine q;
    q.line = line_number;
    if (!parse_int(fields[0], &q.pid)) {
      throw std::runtime_error(where + "identity " + quote_name(std::string(fields[0])) + " is not an integer");
    }
    if (q.pid < 0) {
      throw std::runtime_error(where + "identity " + std::to_string(q.pid) + " is not a labeled person");
    }
    static const char* names[4] = {"x", "y", "w", "h"};
    for (int k = 0; k < 4; ++k) {
      if (!parse_double(fields[1 + k], &q.xywh[k]) || !detail::plausible_coordinate(q.xywh[k])) {
        throw std::runtime_error(where + names[k] + " " + quote_name(std::string(fields[1 + k])) +
                                 " is not a finite number");
      }
    }
    if (q.xywh[2] <= 0 || q.xywh[3] <= 0) {
      throw std::runtime_error(where + "the query box has no area (w " + std::string(fields[3]) + ", h " +
                               std::string(fields[4]) + ")");
    }
    q.frame = std::string(fields[5]);
    if (!detail::is_plain_file_name(q.frame)) {
      throw std::runtime_error(where + "frame " + quote_name(q.frame) + " is not a valid frame name");
    }
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<PrwQueryLine> read_prw_query_info(const std::string& path) {
  detail::require_file(path, "the PRW queries, lines 'pid x y w h frame'");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot be opened for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_prw_query_info(text.str(), path);
}

std::vector<PrwAnnotationRow> read_prw_annotation(const std::string& path) {
  MatFile file(path);
  std::string variable;
  for (const auto& v : kAnnotationVariables) {
    if (file.has_variable(v)) {
      variable = v;
      break;
    }
  }
  if (variable.empty()) {
    throw std::runtime_error(path +
                             ": none of the variables box_new, anno_file, anno_previous found (expected an "
                             "N x 5 matrix [id, x, y, w, h]); variables in the file: " +
                             join_names(file.variable_names()));
  }
  const MatNode boxes = file.read(variable);
  if (boxes.numel() == 0) {
    if (boxes.is_numeric() || boxes.kind() == MatNode::Kind::kEmpty) return {};
    boxes.fail("is a " + boxes.dims_text() + " " + boxes.class_name() + " array, expected an N x 5 numeric matrix");
  }
  if (!boxes.is_numeric() || boxes.dims().size() != 2 || boxes.dims()[1] != 5) {
    boxes.fail("is a " + boxes.dims_text() + " " + boxes.class_name() +
               " array, expected an N x 5 numeric matrix [id, x, y, w, h]");
  }
  const size_t rows = boxes.dims()[0];
  const std::vector<double> v = boxes.numbers();  // column-major: v[r + c * rows]
  std::vector<PrwAnnotationRow> out(rows);
  for (size_t r = 0; r < rows; ++r) {
    const double id = v[r];
    if (!std::isfinite(id) || id != std::floor(id) || (id < 0 && id != kUnlabeledId) || id > 1e9) {
      boxes.fail("row " + std::to_string(r + 1) + " has identity " + std::to_string(id) +
                 " (expected -2 for an unlabeled person or a non-negative integer)");
    }
    out[r].id = id;
    for (size_t c = 0; c < 4; ++c) {
      const double x = v[r + (c + 1) * rows];
      if (!detail::plausible_coordinate(x)) {
        boxes.fail("row " + std::to_string(r + 1) + " holds a non-finite or implausible coordinate");
      }
      out[r].xywh[c] = x;
    }
  }
  return out;
}

std::vector<std::string> read_prw_frame_list(const std::string& path, const std::string& variable) {
  MatFile file(path);
  const MatNode list = file.read(variable, "the PRW frame list: a cell array of frame names");
  if (!list.is_cell()) {
    list.fail("is a " + list.dims_text() + " " + list.class_name() + " array, expected a cell array of frame names");
  }
  std::vector<std::string> out(list.numel());
  for (size_t i = 0; i < list.numel(); ++i) {
    const MatNode cell = list.cell(i);
    out[i] = cell.string();
    if (!detail::is_plain_file_name(out[i])) cell.fail("is not a valid frame name (" + quote_name(out[i]) + ")");
  }
  return out;
}

// ---------------------------------------------------------------------------------------

TrainSplit load_prw_train(const std::string& root) {
  detail::require_root(root, "PRW");
  TrainSplit split;
  split.images = load_frames(root, "frame_train.mat", "img_index_train", split.summary);
  std::map<int64_t, int64_t> dense;  // PRW id -> 0 .. n-1 in increasing id order
  for (const auto& image : split.images) {
    for (const auto& person : image.persons) {
      if (person.pid != kUnlabeled) dense.emplace(person.pid, 0);
    }
  }
  int64_t next = 0;
  for (auto& [id, label] : dense) label = next++;
  for (auto& image : split.images) {
    for (auto& person : image.persons) {
      if (person.pid != kUnlabeled) person.pid = dense.at(person.pid);
    }
  }
  split.num_labeled_ids = next;
  return split;
}

SearchSplit load_prw_test(const std::string& root, bool ignore_cam_id) {
  detail::require_root(root, "PRW");
  SearchSplit split;
  split.images = load_frames(root, "frame_test.mat", "img_index_test", split.summary);
  const std::string query_path = join_path(root, "query_info.txt");
  const std::vector<PrwQueryLine> lines = read_prw_query_info(query_path);

  std::unordered_map<std::string, int32_t> frame_index;
  // For every id, the frames holding it with the (first) box, in frame order.
  std::unordered_map<int64_t, std::vector<std::pair<int32_t, Box>>> occurrences;
  for (size_t i = 0; i < split.images.size(); ++i) {
    const ImageRecord& image = split.images[i];
    frame_index.emplace(image.name, static_cast<int32_t>(i));
    std::vector<int64_t> done;
    for (const PersonBox& person : image.persons) {
      if (person.pid == kUnlabeled || std::find(done.begin(), done.end(), person.pid) != done.end()) continue;
      done.push_back(person.pid);
      occurrences[person.pid].emplace_back(static_cast<int32_t>(i), person.box);
    }
  }

  split.queries.reserve(lines.size());
  for (const PrwQueryLine& line : lines) {
    const auto it = frame_index.find(image_name(line.frame));
    if (it == frame_index.end()) {
      throw std::runtime_error(query_path + ":" + std::to_string(line.line) + ": query frame " +
                               quote_name(line.frame) + " is not a test frame (not in frame_test.mat)");
    }
    SearchQuery query;
    query.image = it->second;
    query.box = prw_corner_box(line.xywh[0], line.xywh[1], line.xywh[2], line.xywh[3]);
    query.pid = std::to_string(line.pid);
    const int camera = split.images[query.image].camera;
    auto in_gallery = [&](int32_t i) {
      return i != query.image && (ignore_cam_id || split.images[i].camera != camera);
    };
    query.gallery.reserve(split.images.size());
    for (int32_t i = 0; i < static_cast<int32_t>(split.images.size()); ++i) {
      if (in_gallery(i)) query.gallery.push_back(i);
    }
    const auto occ = occurrences.find(line.pid);
    if (occ != occurrences.end()) {
      for (const auto& [frame, box] : occ->second) {
        if (in_gallery(frame)) query.positives.emplace_back(frame, box);
      }
    }
    split.queries.push_back(std::move(query));
  }
  return split;
}

}  // namespace psearch::data
