#include "psearch/evaluation/results_file.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/ivalue.h>
#include <ATen/ops/all.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "psearch/checkpoint/torch_object.h"
#include "psearch/checkpoint/torch_save.h"
#include "psearch/util/atomic_file.h"

namespace psearch::evaluation {
namespace {

using checkpoint::pickle::Value;
using checkpoint::pickle::ValuePtr;
using Kind = Value::Kind;

std::string shape_text(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

std::string box_text(const data::Box& b) {
  std::ostringstream out;
  out << "(" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3] << ")";
  return out.str();
}

/// Errors name the file and the entry ("gallery[12] (c1s1_000151.jpg)").
struct Reporter {
  std::string path;
  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw std::runtime_error(path + ": " + (where.empty() ? "" : where + ": ") + what);
  }
};

const ValuePtr* find_key(const ValuePtr& dict, const std::string& key) {
  for (const auto& [k, v] : dict->entries)
    if (k->kind == Kind::String && k->text == key) return &v;
  return nullptr;
}

const ValuePtr& require(const Reporter& r, const std::string& where, const ValuePtr& dict, const std::string& key) {
  if (dict->kind != Kind::Dict) r.fail(where, "expected a dict");
  const ValuePtr* v = find_key(dict, key);
  if (!v || (*v)->kind == Kind::None) r.fail(where, "missing \"" + key + "\"");
  return *v;
}

const std::vector<ValuePtr>& require_list(const Reporter& r, const std::string& where, const ValuePtr& v) {
  if (v->kind != Kind::List && v->kind != Kind::Tuple) r.fail(where, "expected a list");
  return v->items;
}

std::string require_string(const Reporter& r, const std::string& where, const ValuePtr& v) {
  if (v->kind != Kind::String) r.fail(where, "expected a string");
  return v->text;
}

/// A floating-point tensor as float32, checked finite. Lists of numbers are accepted too.
at::Tensor require_tensor(const Reporter& r, const std::string& where, const ValuePtr& v) {
  at::Tensor t;
  if (v->kind == Kind::Tensor) {
    t = v->tensor;
    if (!at::isFloatingType(t.scalar_type()) && !at::isIntegralType(t.scalar_type(), false))
      r.fail(where, "expected a real tensor, got " + std::string(c10::toString(t.scalar_type())));
  } else if (v->kind == Kind::List || v->kind == Kind::Tuple) {
    std::vector<double> values;
    for (const auto& item : v->items) {
      if (item->kind == Kind::Float) values.push_back(item->real);
      else if (item->kind == Kind::Int) values.push_back(static_cast<double>(item->integer));
      else r.fail(where, "expected a tensor or a list of numbers");
    }
    t = at::tensor(values, at::kDouble);
  } else {
    r.fail(where, "expected a tensor");
  }
  t = t.to(at::kFloat).contiguous();
  if (t.numel() > 0 && !at::isfinite(t).all().item<bool>()) r.fail(where, "holds NaN or infinite values");
  return t;
}

/// Where the embedding size was first seen, so a mismatch can name both entries.
struct Dim {
  int64_t value = -1;
  std::string source;
};

void check_dim(const Reporter& r, const std::string& where, int64_t got, Dim& dim) {
  if (dim.value < 0) {
    dim.value = got;
    dim.source = where;
  } else if (got != dim.value) {
    r.fail(where, "features have " + std::to_string(got) + " dimensions, " + dim.source + " has " +
                      std::to_string(dim.value));
  }
}

/// [N, D] features; with N == 0 any empty shape is accepted and becomes [0, D] later.
at::Tensor read_features(const Reporter& r, const std::string& where, const ValuePtr& v, int64_t n, Dim& dim) {
  at::Tensor f = require_tensor(r, where + ": features", v);
  if (n == 0 && f.numel() == 0) return f;
  if (f.dim() != 2 || f.size(0) != n)
    r.fail(where, "features must have shape [" + std::to_string(n) + ", D], got " + shape_text(f));
  check_dim(r, where, f.size(1), dim);
  return f;
}

}  // namespace

ResultsFile read_results_file(const std::string& path) {
  const Reporter r{path};
  const ValuePtr root = checkpoint::load_object(path);
  if (root->kind != Kind::Dict) r.fail("", "not a psearch results file (expected a dict, see docs/results_format.md)");
  const ValuePtr* format = find_key(root, "format");
  if (!format || (*format)->kind != Kind::String)
    r.fail("", std::string("not a psearch results file (no \"format\": \"") + kResultsFormat + "\")");
  if ((*format)->text != kResultsFormat)
    r.fail("", "unsupported results format \"" + (*format)->text + "\" (this program reads \"" + kResultsFormat + "\")");

  ResultsFile out;
  out.path = path;
  Dim dim;
  std::unordered_map<std::string, size_t> seen;
  const auto& gallery = require_list(r, "gallery", require(r, "", root, "gallery"));
  for (size_t i = 0; i < gallery.size(); ++i) {
    std::string where = "gallery[" + std::to_string(i) + "]";
    const std::string name = require_string(r, where + ": image", require(r, where, gallery[i], "image"));
    where += " (" + name + ")";
    if (!seen.emplace(name, i).second)
      r.fail(where, "image listed twice (also gallery[" + std::to_string(seen[name]) + "])");
    modeling::Detections d;
    d.boxes = require_tensor(r, where + ": boxes", require(r, where, gallery[i], "boxes"));
    if (d.boxes.numel() == 0) d.boxes = d.boxes.reshape({0, 4});
    if (d.boxes.dim() != 2 || d.boxes.size(1) != 4)
      r.fail(where, "boxes must have shape [N, 4], got " + shape_text(d.boxes));
    const int64_t n = d.boxes.size(0);
    d.scores = require_tensor(r, where + ": scores", require(r, where, gallery[i], "scores"));
    if (n == 0 && d.scores.numel() == 0) d.scores = d.scores.reshape({0});
    if (d.scores.dim() != 1 || d.scores.size(0) != n)
      r.fail(where, "scores must have shape [" + std::to_string(n) + "] (one per box), got " + shape_text(d.scores));
    d.features = read_features(r, where, require(r, where, gallery[i], "features"), n, dim);
    out.gallery_images.push_back(name);
    out.gallery.push_back(std::move(d));
  }

  const auto& queries = require_list(r, "queries", require(r, "", root, "queries"));
  std::vector<at::Tensor> query_features;
  for (size_t q = 0; q < queries.size(); ++q) {
    std::string where = "queries[" + std::to_string(q) + "]";
    const std::string name = require_string(r, where + ": image", require(r, where, queries[q], "image"));
    where += " (" + name + ")";
    const at::Tensor box = require_tensor(r, where + ": box", require(r, where, queries[q], "box"));
    if (box.numel() != 4) r.fail(where, "box must hold 4 numbers (x1, y1, x2, y2), got " + shape_text(box));
    const float* b = box.data_ptr<float>();
    at::Tensor f = require_tensor(r, where + ": features", require(r, where, queries[q], "features"));
    if (f.dim() == 2 && f.size(0) == 1) f = f.reshape({f.size(1)});
    if (f.dim() != 1) r.fail(where, "features must have shape [D], got " + shape_text(f));
    check_dim(r, where, f.size(0), dim);
    out.query_images.push_back(name);
    out.query_boxes.push_back({b[0], b[1], b[2], b[3]});
    query_features.push_back(f);
  }
  out.dim = std::max<int64_t>(dim.value, 0);
  out.query_features = query_features.empty() ? at::empty({0, out.dim}, at::kFloat) : at::stack(query_features);
  for (auto& d : out.gallery)
    if (d.features.numel() == 0) d.features = at::empty({0, out.dim}, at::kFloat);

  const ValuePtr* context = find_key(root, "query_detections");
  if (context && (*context)->kind != Kind::None) {
    const auto& items = require_list(r, "query_detections", *context);
    if (items.size() != queries.size())
      r.fail("query_detections", "has " + std::to_string(items.size()) + " entries for " +
                                     std::to_string(queries.size()) + " queries");
    for (size_t q = 0; q < items.size(); ++q) {
      const std::string where = "query_detections[" + std::to_string(q) + "] (" + out.query_images[q] + ")";
      QueryContext c;
      c.boxes = require_tensor(r, where + ": boxes", require(r, where, items[q], "boxes"));
      if (c.boxes.dim() != 2 || c.boxes.size(1) != 4 || c.boxes.size(0) < 1)
        r.fail(where, "boxes must have shape [M, 4] with M >= 1 (the query box first), got " + shape_text(c.boxes));
      c.features = read_features(r, where, require(r, where, items[q], "features"), c.boxes.size(0), dim);
      const float* b = c.boxes.data_ptr<float>();
      const auto& qb = out.query_boxes[q];
      for (int k = 0; k < 4; ++k)
        if (!(std::abs(b[k] - qb[k]) <= 1.0f))
          r.fail(where, "the first box must be the query box " + box_text(qb) + ", got " +
                            box_text({b[0], b[1], b[2], b[3]}));
      out.query_context.push_back(std::move(c));
    }
  }
  return out;
}

SearchInputs match_results(const ResultsFile& results, const data::SearchSplit& split, int64_t* unused_images) {
  const Reporter r{results.path};
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < results.gallery_images.size(); ++i) index.emplace(results.gallery_images[i], i);

  SearchInputs inputs;
  inputs.gallery.reserve(split.images.size());
  std::string first_missing;
  int64_t missing = 0, used = 0;
  for (const auto& image : split.images) {
    const auto it = index.find(image.name);
    if (it == index.end()) {
      if (missing++ == 0) first_missing = image.name;
      continue;
    }
    ++used;
    inputs.gallery.push_back(results.gallery[it->second]);
  }
  if (missing > 0)
    r.fail("", "no detections for image " + first_missing + " of the test split" +
                   (missing > 1 ? " (and " + std::to_string(missing - 1) + " more images)" : "") +
                   ": \"gallery\" must list every test image, with empty tensors where nothing was detected");
  if (unused_images) *unused_images = static_cast<int64_t>(results.gallery_images.size()) - used;

  if (results.query_images.size() != split.queries.size())
    r.fail("queries", "has " + std::to_string(results.query_images.size()) + " entries, the test split has " +
                          std::to_string(split.queries.size()) + " queries");
  for (size_t q = 0; q < split.queries.size(); ++q) {
    const auto& query = split.queries[q];
    const std::string& expected = split.images.at(query.image).name;
    bool same = results.query_images[q] == expected;
    for (int k = 0; k < 4 && same; ++k) same = std::abs(results.query_boxes[q][k] - query.box[k]) <= 1.0f;
    if (!same)
      r.fail("queries[" + std::to_string(q) + "]",
             "is " + results.query_images[q] + " " + box_text(results.query_boxes[q]) + " but the test split's query " +
                 std::to_string(q) + " is " + expected + " " + box_text(query.box) +
                 ": queries must be listed in the dataset's query order");
  }
  inputs.query_features = results.query_features;
  inputs.query_context = results.query_context;
  return inputs;
}

namespace {

using Entry = c10::impl::GenericDict;

/// A str -> any dict (c10::Dict<std::string, IValue> cannot be default-constructed).
Entry new_entry() { return Entry(c10::StringType::get(), c10::AnyType::get()); }

c10::impl::GenericList any_list() { return c10::impl::GenericList(c10::AnyType::get()); }

/// A CPU float32 copy with a storage of its own (torch_save_bytes writes whole storages).
at::Tensor cpu_float(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat).clone(at::MemoryFormat::Contiguous); }

}  // namespace

void write_results_file(const std::string& path, const ResultsFile& results) {
  if (results.gallery.size() != results.gallery_images.size() || results.query_boxes.size() != results.query_images.size())
    throw std::invalid_argument(path + ": write_results_file: names and entries differ in number");
  Entry root = new_entry();
  root.insert("format", std::string(kResultsFormat));
  auto gallery = any_list();
  for (size_t i = 0; i < results.gallery.size(); ++i) {
    const modeling::Detections& d = results.gallery[i];
    Entry e = new_entry();
    e.insert("image", results.gallery_images[i]);
    e.insert("boxes", cpu_float(d.boxes));
    e.insert("scores", cpu_float(d.scores));
    e.insert("features", d.features.defined() ? cpu_float(d.features) : at::zeros({d.boxes.size(0), results.dim}));
    gallery.push_back(e);
  }
  root.insert("gallery", gallery);
  auto queries = any_list();
  for (size_t q = 0; q < results.query_images.size(); ++q) {
    const data::Box& b = results.query_boxes[q];
    Entry e = new_entry();
    e.insert("image", results.query_images[q]);
    e.insert("box", at::tensor(std::vector<float>(b.begin(), b.end())));
    e.insert("features", cpu_float(results.query_features[static_cast<int64_t>(q)]));
    queries.push_back(e);
  }
  root.insert("queries", queries);
  if (!results.query_context.empty()) {
    auto contexts = any_list();
    for (const QueryContext& c : results.query_context) {
      Entry e = new_entry();
      e.insert("boxes", cpu_float(c.boxes));
      e.insert("features", cpu_float(c.features));
      contexts.push_back(e);
    }
    root.insert("query_detections", contexts);
  }
  const std::vector<char> bytes = checkpoint::torch_save_bytes(root);
  util::write_bytes_atomically(path, std::string_view(bytes.data(), bytes.size()));
}

}  // namespace psearch::evaluation
