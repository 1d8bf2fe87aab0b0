#include "psearch/data/cuhk_sysu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "psearch/data/loader_util.h"
#include "psearch/data/mat_file.h"

namespace psearch::data {
namespace {

using detail::join_path;
using detail::quote_name;

const char* kImagesMat = "annotation/Images.mat";
const char* kPoolMat = "annotation/pool.mat";
const char* kTrainMat = "annotation/test/train_test/Train.mat";
const char* kBoxWhat = "a numeric 1x4 array (x, y, w, h)";

using IntBox = std::array<int64_t, 4>;

IntBox truncated(const std::array<double, 4>& xywh) {
  // Values are validated finite and within +-1e7 by the readers, so the casts are defined.
  return {static_cast<int64_t>(std::trunc(xywh[0])), static_cast<int64_t>(std::trunc(xywh[1])),
          static_cast<int64_t>(std::trunc(xywh[2])), static_cast<int64_t>(std::trunc(xywh[3]))};
}

std::array<double, 4> read_xywh(const MatNode& node) {
  const std::vector<double> v = node.numbers_exactly(4, kBoxWhat);
  for (double x : v) {
    if (!detail::plausible_coordinate(x)) node.fail("holds a non-finite or implausible coordinate");
  }
  return {v[0], v[1], v[2], v[3]};
}

/// `ishard` (or any flag): empty -> false, else the first element is non-zero.
bool read_flag(const MatNode& node) {
  if (node.numel() == 0) return false;
  const std::vector<double> v = node.numbers();
  return v.at(0) != 0.0;
}

std::string read_name(const MatNode& node, const std::string& what) {
  std::string name = node.string();
  if (!detail::is_plain_file_name(name)) node.fail("is not a valid " + what + " (" + quote_name(name) + ")");
  return name;
}

/// `node` must be a struct array with (at least) the fields `required`. Checked before
/// anything is sized by numel(): the structural check bounds the element count of a struct
/// array by its bytes only when it has fields.
void require_struct(const MatNode& node, const std::vector<std::string>& required, const std::string& expected) {
  if (!node.is_struct()) {
    node.fail("is a " + node.dims_text() + " " + node.class_name() + " array, expected " + expected);
  }
  for (const auto& field : required) {
    if (!node.has_field(field)) {
      node.fail("has no field '" + field + "' (expected " + expected +
                "); its fields: " + join_names(node.field_names()));
    }
  }
}

/// Identity number from its name: "p1234" -> 1234; names without one get `fallback`.
int64_t identity_number(const std::string& name, int64_t fallback) {
  size_t i = 0;
  while (i < name.size() && !(name[i] >= '0' && name[i] <= '9')) ++i;
  if (i == name.size() || name.size() - i > 15) return fallback;
  int64_t value = 0;
  for (; i < name.size(); ++i) {
    if (!(name[i] >= '0' && name[i] <= '9')) return fallback;
    value = value * 10 + (name[i] - '0');
  }
  return value;
}

bool degenerate(const std::array<double, 4>& xywh) {
  if (xywh[2] <= 0 || xywh[3] <= 0) return true;
  const IntBox b = truncated(xywh);
  return b[2] <= 0 || b[3] <= 0;
}

/// Images.mat as records (boxes converted, degenerate ones dropped and counted) and the
/// integer (x, y, w, h) of each kept box, which Train/TestG boxes are matched against.
struct AnnotatedImage {
  ImageRecord record;
  std::vector<IntBox> ints;
};

AnnotatedImage annotate(const CuhkImageEntry& entry, const std::string& root, LoadSummary& summary) {
  AnnotatedImage out;
  out.record.name = entry.name;
  out.record.path = join_path(root, "Image/SSM/" + entry.name);
  for (const CuhkRawBox& raw : entry.boxes) {
    if (degenerate(raw.xywh)) {
      ++summary.skipped_degenerate_boxes;
      continue;
    }
    PersonBox person;
    person.box = cuhk_corner_box(raw.xywh);
    person.hard = raw.hard;
    out.record.persons.push_back(person);
    out.ints.push_back(truncated(raw.xywh));
    ++summary.boxes;
  }
  ++summary.images;
  return out;
}

/// Labels the first box of `image` equal to `box` with `pid` (as the reference code does);
/// returns false when no box matches.
bool label_box(AnnotatedImage& image, const IntBox& box, int64_t pid) {
  for (size_t i = 0; i < image.ints.size(); ++i) {
    if (image.ints[i] == box) {
      image.record.persons[i].pid = pid;
      return true;
    }
  }
  return false;
}

void require_image_file(const ImageRecord& image, const std::string& listed_in) {
  if (!detail::is_regular_file(image.path)) {
    throw std::runtime_error(image.path + ": image file not found (listed in " + listed_in + ")");
  }
}

std::unordered_map<std::string, size_t> index_images(const std::vector<CuhkImageEntry>& images,
                                                     const std::string& path) {
  std::unordered_map<std::string, size_t> index;
  index.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    if (!index.emplace(images[i].name, i).second) {
      throw std::runtime_error(path + ": image " + quote_name(images[i].name) + " is listed twice (Img(" +
                               std::to_string(i + 1) + "))");
    }
  }
  return index;
}

struct ProtocolFile {
  std::string path;
  std::vector<std::string> variables;
  std::string what;
};

ProtocolFile protocol_file(const std::string& root, int gallery_size, CuhkSubset subset) {
  switch (subset) {
    case CuhkSubset::kOcclusion:
      return {join_path(root, "annotation/test/subset/Occlusion.mat"),
              {"Occlusion1", "Occlusion"},
              "the CUHK-SYSU occlusion query subset, variable Occlusion1"};
    case CuhkSubset::kLowResolution:
      return {join_path(root, "annotation/test/subset/Resolution.mat"),
              {"Test_Size", "Resolution"},
              "the CUHK-SYSU low-resolution query subset, variable Test_Size"};
    case CuhkSubset::kNone:
      break;
  }
  const int n = gallery_size == -1 ? 50 : gallery_size;
  const std::string var = "TestG" + std::to_string(n);
  return {join_path(root, "annotation/test/train_test/" + var + ".mat"),
          {var},
          "the CUHK-SYSU test protocol for gallery size " + std::to_string(n) + ", variable " + var};
}

}  // namespace

// ---------------------------------------------------------------------------------------

CuhkSubset parse_cuhk_subset(const std::string& text) {
  if (text == "none" || text.empty()) return CuhkSubset::kNone;
  if (text == "occlusion") return CuhkSubset::kOcclusion;
  if (text == "low_resolution" || text == "low-resolution" || text == "resolution") return CuhkSubset::kLowResolution;
  throw std::invalid_argument("unknown CUHK-SYSU subset '" + text + "' (expected none, occlusion or low_resolution)");
}

std::string to_string(CuhkSubset subset) {
  switch (subset) {
    case CuhkSubset::kOcclusion:
      return "occlusion";
    case CuhkSubset::kLowResolution:
      return "low_resolution";
    case CuhkSubset::kNone:
      break;
  }
  return "none";
}

const std::vector<int>& cuhk_gallery_sizes() {
  static const std::vector<int> sizes = {50, 100, 500, 1000, 2000, 4000};
  return sizes;
}

Box cuhk_corner_box(const std::array<double, 4>& xywh) {
  const IntBox b = truncated(xywh);
  return {static_cast<float>(b[0]), static_cast<float>(b[1]), static_cast<float>(b[0] + b[2]),
          static_cast<float>(b[1] + b[3])};
}

std::vector<CuhkImageEntry> read_cuhk_images(const std::string& path) {
  MatFile file(path);
  const MatNode img = file.read("Img", "the CUHK-SYSU image list: a struct array with fields imname, nAppear, box");
  require_struct(img, {"imname", "box"}, "a struct array with fields imname, nAppear, box");
  std::vector<CuhkImageEntry> out(img.numel());
  for (size_t i = 0; i < img.numel(); ++i) {
    CuhkImageEntry& entry = out[i];
    entry.name = read_name(img.field(i, "imname", "the image file name"), "image file name");
    const MatNode boxes = img.field(i, "box", "a struct array with fields idlocate, ishard");
    if (boxes.numel() == 0) continue;  // an image without persons ([] or a 1x0 struct)
    require_struct(boxes, {"idlocate"}, "a struct array with fields idlocate, ishard");
    const bool has_hard = boxes.has_field("ishard");
    entry.boxes.resize(boxes.numel());
    for (size_t k = 0; k < boxes.numel(); ++k) {
      entry.boxes[k].xywh = read_xywh(boxes.field(k, "idlocate", kBoxWhat));
      if (has_hard) entry.boxes[k].hard = read_flag(boxes.field(k, "ishard"));
    }
  }
  return out;
}

std::vector<std::string> read_cuhk_pool(const std::string& path) {
  MatFile file(path);
  const MatNode pool = file.read("pool", "the CUHK-SYSU test image list: a cell array of image names");
  if (!pool.is_cell())
    pool.fail("is a " + pool.dims_text() + " " + pool.class_name() + " array, expected a cell array of image names");
  std::vector<std::string> out(pool.numel());
  for (size_t i = 0; i < pool.numel(); ++i) out[i] = read_name(pool.cell(i), "image file name");
  return out;
}

std::vector<CuhkIdentity> read_cuhk_train(const std::string& path) {
  MatFile file(path);
  const MatNode train = file.read(
      "Train", "the CUHK-SYSU training identities: a cell array of structs with fields idname, nAppear, scene");
  // The real file is an Nx1 cell array of 1x1 structs; a plain struct array is accepted too.
  if (!train.is_cell() && !train.is_struct()) {
    train.fail("is a " + train.dims_text() + " " + train.class_name() + " array, expected a cell array of structs");
  }
  if (train.is_struct())
    require_struct(train, {"idname", "scene"}, "a struct array with fields idname, nAppear, scene");
  std::vector<CuhkIdentity> out(train.numel());
  for (size_t j = 0; j < train.numel(); ++j) {
    MatNode person = train.is_cell() ? train.cell(j) : train;
    const size_t element = train.is_cell() ? 0 : j;
    require_struct(person, {"idname", "scene"}, "a struct with fields idname, nAppear, scene");
    if (train.is_cell() && person.numel() != 1)
      person.fail("holds " + std::to_string(person.numel()) + " structs, expected 1");
    out[j].name = person.field(element, "idname", "the identity name").string();
    const MatNode scene = person.field(element, "scene", "a struct array with fields imname, idlocate, ishard");
    if (scene.numel() == 0) continue;
    require_struct(scene, {"imname", "idlocate"}, "a struct array with fields imname, idlocate, ishard");
    const bool has_hard = scene.has_field("ishard");
    out[j].scenes.resize(scene.numel());
    for (size_t k = 0; k < scene.numel(); ++k) {
      CuhkSceneBox& s = out[j].scenes[k];
      s.image = read_name(scene.field(k, "imname", "the image file name"), "image file name");
      s.xywh = read_xywh(scene.field(k, "idlocate", kBoxWhat));
      if (has_hard) s.hard = read_flag(scene.field(k, "ishard"));
    }
  }
  return out;
}

std::vector<CuhkProtocolEntry> read_cuhk_protocol(const std::string& path, const std::vector<std::string>& variables) {
  MatFile file(path);
  std::string variable;
  for (const auto& v : variables) {
    if (file.has_variable(v)) {
      variable = v;
      break;
    }
  }
  if (variable.empty()) {
    throw std::runtime_error(
        path + ": variable '" + join_names(variables) +
        "' not found (expected a struct array with fields Query, Gallery); variables in the file: " +
        join_names(file.variable_names()));
  }
  const MatNode protocol = file.read(variable);
  require_struct(protocol, {"Query", "Gallery"}, "a struct array with fields Query, Gallery");
  std::vector<CuhkProtocolEntry> out(protocol.numel());
  for (size_t i = 0; i < protocol.numel(); ++i) {
    CuhkProtocolEntry& entry = out[i];
    const MatNode query = protocol.field(i, "Query", "a struct with fields imname, idlocate, ishard, idname");
    require_struct(query, {"imname", "idlocate"}, "a struct with fields imname, idlocate, ishard, idname");
    if (query.numel() != 1) query.fail("holds " + std::to_string(query.numel()) + " structs, expected 1");
    entry.query_image = read_name(query.field(0, "imname", "the query image name"), "image file name");
    entry.query_xywh = read_xywh(query.field(0, "idlocate", kBoxWhat));
    entry.identity = query.has_field("idname") ? query.field(0, "idname").string() : "";
    const MatNode gallery = protocol.field(i, "Gallery", "a struct array with fields imname, idlocate, ishard");
    if (gallery.numel() == 0) continue;
    require_struct(gallery, {"imname", "idlocate"}, "a struct array with fields imname, idlocate, ishard");
    entry.gallery.resize(gallery.numel());
    for (size_t k = 0; k < gallery.numel(); ++k) {
      CuhkGalleryEntry& g = entry.gallery[k];
      g.image = read_name(gallery.field(k, "imname", "the gallery image name"), "image file name");
      const MatNode loc = gallery.field(k, "idlocate", kBoxWhat + std::string(" or empty"));
      if (loc.numel() == 0) continue;  // a distractor: the image does not hold the person
      g.xywh = read_xywh(loc);
      g.has_box = true;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------

TrainSplit load_cuhk_sysu_train(const std::string& root) {
  detail::require_root(root, "CUHK-SYSU");
  const std::string images_path = join_path(root, kImagesMat);
  const std::string pool_path = join_path(root, kPoolMat);
  const std::string train_path = join_path(root, kTrainMat);
  detail::require_file(images_path, "the CUHK-SYSU image list, variable Img");
  detail::require_file(pool_path, "the CUHK-SYSU test image list, variable pool");
  detail::require_file(train_path, "the CUHK-SYSU training identities, variable Train");

  const std::vector<CuhkImageEntry> entries = read_cuhk_images(images_path);
  index_images(entries, images_path);  // refuses duplicated names
  const std::vector<std::string> pool = read_cuhk_pool(pool_path);
  const std::unordered_set<std::string> test_names(pool.begin(), pool.end());
  const std::vector<CuhkIdentity> identities = read_cuhk_train(train_path);

  TrainSplit split;
  std::vector<AnnotatedImage> images;
  std::unordered_map<std::string, size_t> train_index;
  for (const CuhkImageEntry& entry : entries) {
    if (test_names.count(entry.name)) continue;
    train_index.emplace(entry.name, images.size());
    images.push_back(annotate(entry, root, split.summary));
    require_image_file(images.back().record, kImagesMat);
  }
  for (size_t j = 0; j < identities.size(); ++j) {
    for (const CuhkSceneBox& scene : identities[j].scenes) {
      const auto it = train_index.find(scene.image);
      if (it == train_index.end() || !label_box(images[it->second], truncated(scene.xywh), static_cast<int64_t>(j))) {
        ++split.summary.unmatched_identity_boxes;
      }
    }
  }
  split.num_labeled_ids = static_cast<int64_t>(identities.size());
  split.images.reserve(images.size());
  for (auto& image : images) split.images.push_back(std::move(image.record));
  return split;
}

SearchSplit load_cuhk_sysu_test(const std::string& root, int gallery_size, CuhkSubset subset) {
  const auto& sizes = cuhk_gallery_sizes();
  const bool known = gallery_size == -1 || std::find(sizes.begin(), sizes.end(), gallery_size) != sizes.end();
  if (subset != CuhkSubset::kNone && gallery_size <= 0 && gallery_size != -1) {
    throw std::invalid_argument("CUHK-SYSU gallery size " + std::to_string(gallery_size) +
                                " is neither -1 (the whole pool) nor the size of the subset's galleries");
  }
  if (subset == CuhkSubset::kNone && !known) {
    throw std::invalid_argument("CUHK-SYSU gallery size " + std::to_string(gallery_size) +
                                " is not one of 50, 100, 500, 1000, 2000, 4000 or -1 (the whole pool)");
  }
  detail::require_root(root, "CUHK-SYSU");
  const std::string images_path = join_path(root, kImagesMat);
  const std::string pool_path = join_path(root, kPoolMat);
  const ProtocolFile protocol = protocol_file(root, gallery_size, subset);
  detail::require_file(images_path, "the CUHK-SYSU image list, variable Img");
  detail::require_file(pool_path, "the CUHK-SYSU test image list, variable pool");
  detail::require_file(protocol.path, protocol.what);

  const std::vector<CuhkImageEntry> entries = read_cuhk_images(images_path);
  const auto entry_index = index_images(entries, images_path);
  const std::vector<std::string> pool = read_cuhk_pool(pool_path);
  const std::vector<CuhkProtocolEntry> pairs = read_cuhk_protocol(protocol.path, protocol.variables);

  SearchSplit split;
  std::vector<AnnotatedImage> images;
  std::unordered_map<std::string, int32_t> pool_index;
  images.reserve(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) {
    const auto it = entry_index.find(pool[i]);
    if (it == entry_index.end()) {
      throw std::runtime_error(pool_path + ": pool{" + std::to_string(i + 1) + "} names image " + quote_name(pool[i]) +
                               ", which " + std::string(kImagesMat) + " does not list");
    }
    if (!pool_index.emplace(pool[i], static_cast<int32_t>(i)).second) {
      throw std::runtime_error(pool_path + ": image " + quote_name(pool[i]) + " is listed twice (pool{" +
                               std::to_string(i + 1) + "})");
    }
    images.push_back(annotate(entries[it->second], root, split.summary));
    require_image_file(images.back().record, kPoolMat);
  }
  auto image_of = [&](const std::string& name, size_t query, const char* role) {
    const auto it = pool_index.find(name);
    if (it == pool_index.end()) {
      throw std::runtime_error(protocol.path + ": " + role + " image " + quote_name(name) + " of query " +
                               std::to_string(query + 1) + " is not a test image (not in " + kPoolMat + ")");
    }
    return it->second;
  };

  split.queries.resize(pairs.size());
  for (size_t q = 0; q < pairs.size(); ++q) {
    const CuhkProtocolEntry& pair = pairs[q];
    SearchQuery& query = split.queries[q];
    const int64_t pid = identity_number(pair.identity, static_cast<int64_t>(q));
    query.image = image_of(pair.query_image, q, "query");
    query.box = cuhk_corner_box(pair.query_xywh);
    query.pid = pair.identity.empty() ? std::to_string(pid) : pair.identity;
    if (!label_box(images[query.image], truncated(pair.query_xywh), pid)) ++split.summary.unmatched_identity_boxes;
    if (subset != CuhkSubset::kNone && gallery_size != -1 && pair.gallery.size() != static_cast<size_t>(gallery_size)) {
      throw std::runtime_error(protocol.path + ": query " + std::to_string(q + 1) + " has a gallery of " +
                               std::to_string(pair.gallery.size()) + " images; gallery size " +
                               std::to_string(gallery_size) + " does not apply to the " + to_string(subset) +
                               " subset (use " + std::to_string(pair.gallery.size()) + " or -1)");
    }
    query.gallery.reserve(gallery_size == -1 ? pool.size() : pair.gallery.size());
    for (const CuhkGalleryEntry& g : pair.gallery) {
      const int32_t index = image_of(g.image, q, "gallery");
      query.gallery.push_back(index);
      if (!g.has_box) continue;
      query.positives.emplace_back(index, cuhk_corner_box(g.xywh));
      if (!label_box(images[index], truncated(g.xywh), pid)) ++split.summary.unmatched_identity_boxes;
    }
    if (gallery_size == -1) {
      // The whole pool: every other test image is a distractor; the query image is not.
      std::vector<char> listed(pool.size(), 0);
      listed[query.image] = 1;
      for (int32_t index : query.gallery) listed[index] = 1;
      for (size_t i = 0; i < pool.size(); ++i) {
        if (!listed[i]) query.gallery.push_back(static_cast<int32_t>(i));
      }
    }
  }
  split.images.reserve(images.size());
  for (auto& image : images) split.images.push_back(std::move(image.record));
  return split;
}

}  // namespace psearch::data
