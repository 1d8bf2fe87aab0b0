// Reading the merged YAML tree into the typed structs (with unknown-key and type checks),
// writing them back to YAML, and listing the keys for the documentation.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "psearch/config/config.h"
#include "psearch/config/suggest.h"
#include "psearch/config/tree.h"
#include "psearch/config/validate.h"
#include "psearch/modeling/model_registry.h"

namespace psearch::config {
namespace {

using detail::join_path;
using detail::one_line;
using detail::SourcedTree;

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};
template <class T>
struct IsMap : std::false_type {};
template <class T>
struct IsMap<std::map<std::string, T>> : std::true_type {};

/// Structs with a visit() member are sections (YAML mappings); everything else, including
/// a std::map (a mapping whose keys are data, e.g. loss names), is a value.
template <class T>
constexpr bool kIsSection =
    std::is_class_v<T> && !std::is_same_v<T, std::string> && !IsVector<T>::value && !IsMap<T>::value;

// ---------------------------------------------------------------------------------------
// Values: parsing from YAML and the names used in type errors.

template <class T>
struct Kind;
template <>
struct Kind<double> {
  static std::string name() { return "a finite number"; }
  static std::string plural() { return "finite numbers"; }
};
template <>
struct Kind<int64_t> {
  static std::string name() { return "an integer"; }
  static std::string plural() { return "integers"; }
};
template <>
struct Kind<bool> {
  static std::string name() { return "true or false"; }
  static std::string plural() { return "booleans"; }
};
template <>
struct Kind<std::string> {
  static std::string name() { return "a string"; }
  static std::string plural() { return "strings"; }
};
template <class T>
struct Kind<std::vector<T>> {
  static std::string name() { return "a list of " + Kind<T>::plural(); }
  static std::string plural() { return "lists of " + Kind<T>::plural(); }
};
template <class T>
struct Kind<std::map<std::string, T>> {
  static std::string name() { return "a mapping of names to " + Kind<T>::plural(); }
  static std::string plural() { return "mappings of names to " + Kind<T>::plural(); }
};

// .inf, .nan and overflowing literals (1e999) are no setting of any key: refusing them here
// keeps every range check below meaningful (inf > 0 would pass "train.lr > 0").
bool parse(const YAML::Node& n, double& out) {
  return n.IsScalar() && YAML::convert<double>::decode(n, out) && std::isfinite(out);
}
bool parse(const YAML::Node& n, int64_t& out) { return n.IsScalar() && YAML::convert<int64_t>::decode(n, out); }
bool parse(const YAML::Node& n, bool& out) { return n.IsScalar() && YAML::convert<bool>::decode(n, out); }

bool parse(const YAML::Node& n, std::string& out) {
  if (n.IsNull()) {  // "weights:" with nothing after it means no file
    out.clear();
    return true;
  }
  if (!n.IsScalar()) return false;
  out = n.Scalar();
  return true;
}

template <class T>
bool parse(const YAML::Node& n, std::vector<T>& out) {
  if (!n.IsSequence()) return false;
  std::vector<T> items(n.size());
  for (size_t i = 0; i < n.size(); ++i) {
    if (!parse(n[i], items[i])) return false;
  }
  out = std::move(items);
  return true;
}

template <class T>
bool parse(const YAML::Node& n, std::map<std::string, T>& out) {
  if (n.IsNull()) {  // "loss_weights:" with nothing below: none
    out.clear();
    return true;
  }
  if (!n.IsMap()) return false;
  std::map<std::string, T> items;
  for (const auto& entry : n) {
    if (!entry.first.IsScalar() || !parse(entry.second, items[entry.first.Scalar()])) return false;
  }
  out = std::move(items);
  return true;
}

// ---------------------------------------------------------------------------------------
// Values: YAML text.

/// Shortest text that reads back to the same double, always with a '.' or exponent so
/// that it reads as a float ("1.0", "0.003", "1e-05").
std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), v);
  std::string text(buf, result.ptr);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

void emit(YAML::Emitter& out, double v) { out << format_double(v); }
void emit(YAML::Emitter& out, int64_t v) { out << v; }
void emit(YAML::Emitter& out, bool v) { out << (v ? "true" : "false"); }
void emit(YAML::Emitter& out, const std::string& v) { out << YAML::DoubleQuoted << v; }

template <class T>
void emit(YAML::Emitter& out, const std::vector<T>& v) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const auto& item : v) emit(out, item);
  out << YAML::EndSeq;
}

template <class T>
void emit(YAML::Emitter& out, const std::map<std::string, T>& v) {
  out << YAML::Flow << YAML::BeginMap;
  for (const auto& [key, item] : v) {
    out << YAML::Key << key << YAML::Value;
    emit(out, item);
  }
  out << YAML::EndMap;
}

template <class T>
std::string value_text(const T& value) {
  YAML::Emitter out;
  emit(out, value);
  return out.c_str();
}

std::string allowed_text(const std::vector<std::string>& allowed) {
  std::string text;
  for (const auto& a : allowed) text += (text.empty() ? "" : ", ") + a;
  return text;
}

// ---------------------------------------------------------------------------------------
// Visitors.

/// Lists every key (used for the docs and for "did you mean" across sections).
class Lister {
 public:
  explicit Lister(std::vector<KeyInfo>& out, std::string path = "") : out_(out), path_(std::move(path)) {}

  template <class T>
  void operator()(const char* key, T& value, const char* doc) {
    const std::string path = join_path(path_, key);
    if constexpr (kIsSection<T>) {
      out_.push_back({path, "", doc, true});
      Lister sub(out_, path);
      value.visit(sub);
    } else {
      out_.push_back({path, value_text(value), doc, false});
    }
  }

  void choice(const char* key, std::string& value, const std::vector<std::string>& allowed, const char* doc) {
    (*this)(key, value, doc);
    out_.back().doc += " (one of: " + allowed_text(allowed) + ")";
  }

 private:
  std::vector<KeyInfo>& out_;
  std::string path_;
};

/// Writes a section as a YAML block mapping.
class Writer {
 public:
  explicit Writer(YAML::Emitter& out) : out_(out) {}

  template <class T>
  void operator()(const char* key, T& value, const char* /*doc*/) {
    out_ << YAML::Key << key << YAML::Value;
    if constexpr (kIsSection<T>) {
      out_ << YAML::BeginMap;
      value.visit(*this);
      out_ << YAML::EndMap;
    } else {
      emit(out_, value);
    }
  }

  void choice(const char* key, std::string& value, const std::vector<std::string>&, const char* doc) {
    (*this)(key, value, doc);
  }

 private:
  YAML::Emitter& out_;
};

[[noreturn]] void type_error(const SourcedTree& tree, const std::string& path, const std::string& expected,
                             const YAML::Node& got) {
  throw ConfigError(tree.origin_of(path) + ": key '" + path + "' must be " + expected + ", got " + one_line(got));
}

/// " (did you mean 'train.lr'?)": a close sibling first, else keys of that name
/// elsewhere (e.g. 'rpn' at the top level -> 'model.rpn'), else the valid siblings.
std::string suggestion(const std::string& section, const std::string& typed,
                       const std::vector<std::string>& siblings) {
  if (const std::string s = detail::closest(typed, siblings); !s.empty()) {
    return " (did you mean '" + join_path(section, s) + "'?)";
  }
  if (typed.size() >= 3) {  // an abbreviation: "nms" -> "nms_thresh"
    for (const auto& s : siblings) {
      if (s.rfind(typed, 0) == 0) return " (did you mean '" + join_path(section, s) + "'?)";
    }
  }
  std::vector<std::string> elsewhere;
  for (const auto& info : describe_keys()) {
    const std::string last = info.path.substr(info.path.rfind('.') + 1);
    if (detail::is_close(typed, last) && elsewhere.size() < 3) elsewhere.push_back("'" + info.path + "'");
  }
  if (!elsewhere.empty()) {
    std::string text = " (did you mean ";
    for (size_t i = 0; i < elsewhere.size(); ++i) text += (i ? " or " : "") + elsewhere[i];
    return text + "?)";
  }
  std::string text;
  for (const auto& s : siblings) text += (text.empty() ? "" : ", ") + s;
  return " (valid keys " + (section.empty() ? std::string("at the top level") : "in '" + section + "'") + ": " +
         text + ")";
}

/// Reads one section of the merged tree: every key the struct lists is read and
/// type-checked; finish() rejects whatever the struct does not list.
class Reader {
 public:
  Reader(const YAML::Node& map, std::string path, const SourcedTree& tree)
      : map_(map), path_(std::move(path)), tree_(tree) {}

  template <class T>
  void operator()(const char* key, T& value, const char* /*doc*/) {
    known_.emplace_back(key);
    const YAML::Node child = map_[key];
    if (!child) return;  // not given: keep the default
    const std::string path = join_path(path_, key);
    if constexpr (kIsSection<T>) {
      read_section(child, path, value);
    } else if (!parse(child, value)) {
      type_error(tree_, path, Kind<T>::name(), child);
    }
  }

  void choice(const char* key, std::string& value, const std::vector<std::string>& allowed, const char* doc) {
    (*this)(key, value, doc);
    if (!map_[key] || std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    const std::string path = join_path(path_, key);
    const std::string close = detail::closest(value, allowed);
    throw ConfigError(tree_.origin_of(path) + ": key '" + path + "' must be one of " + allowed_text(allowed) +
                      ", got '" + value + "'" + (close.empty() ? "" : " (did you mean '" + close + "'?)"));
  }

  void finish() const {
    for (const auto& entry : map_) {
      const std::string key = entry.first.Scalar();
      if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
      const std::string path = join_path(path_, key);
      throw ConfigError(tree_.origin_of(path) + ": unknown key '" + path + "'" + suggestion(path_, key, known_));
    }
  }

 private:
  template <class T>
  void read_section(const YAML::Node& node, const std::string& path, T& section) {
    if (node.IsNull()) return;  // "rpn:" with nothing below: all defaults
    if (!node.IsMap()) type_error(tree_, path, "a section (a mapping of keys)", node);
    Reader sub(node, path, tree_);
    section.visit(sub);
    sub.finish();
  }

  const YAML::Node map_;  // const: lookups never create nodes
  std::string path_;
  const SourcedTree& tree_;
  std::vector<std::string> known_;
};

Config decode(const SourcedTree& tree) {
  Config config;
  Reader reader(tree.root, "", tree);
  config.visit(reader);
  reader.finish();
  detail::validate_with_origins(config, [&](const std::string& path) { return tree.origin_of(path); });
  return config;
}

}  // namespace

std::vector<std::string> registered_model_types() { return modeling::model_type_names(); }

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  SourcedTree tree = detail::load_tree(path);
  detail::migrate(tree);
  for (const auto& o : overrides) detail::apply_override(tree, o);
  return decode(tree);
}

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  SourcedTree tree = detail::parse_tree(yaml_text, source, std::filesystem::current_path());
  detail::migrate(tree);
  for (const auto& o : overrides) detail::apply_override(tree, o);
  return decode(tree);
}

std::string to_yaml(const Config& config) {
  Config copy = config;  // visit() takes its members by non-const reference
  YAML::Emitter out;
  out << YAML::Comment("psearch config: every key, see docs/config.md") << YAML::Newline;
  out << YAML::BeginMap;
  Writer writer(out);
  copy.visit(writer);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<KeyInfo> describe_keys() {
  std::vector<KeyInfo> keys;
  Config defaults;
  Lister lister(keys);
  defaults.visit(lister);
  return keys;
}

std::vector<std::string> differing_keys(const Config& a, const Config& b) {
  std::vector<KeyInfo> ka, kb;
  Config ca = a, cb = b;  // the visitors take mutable sections
  Lister la(ka), lb(kb);
  ca.visit(la);
  cb.visit(lb);
  // Listed from a config rather than the defaults, KeyInfo::default_value holds its values.
  std::vector<std::string> out;
  for (size_t i = 0; i < ka.size(); ++i) {
    if (!ka[i].is_section && ka[i].default_value != kb[i].default_value)
      out.push_back(ka[i].path + ": " + kb[i].default_value + " -> " + ka[i].default_value);
  }
  return out;
}

bool operator==(const Config& a, const Config& b) {
  // The YAML text is complete and its numbers round-trip exactly, so equal text means
  // equal configs; one definition of the keys (visit) serves both.
  return to_yaml(a) == to_yaml(b);
}

}  // namespace psearch::config
