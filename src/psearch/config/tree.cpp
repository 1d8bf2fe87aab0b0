#include "psearch/config/tree.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "psearch/config/config.h"

namespace psearch::config::detail {
namespace fs = std::filesystem;

namespace {

constexpr const char* kBaseKey = "_base_";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw ConfigError(path.string() + ": cannot open config file (" +
                      (err ? std::strerror(err) : "unknown error") + ")");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // yaml-cpp counts lines and columns from 0; editors count from 1.
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg);
  }
}

/// Every key below (and including) `path` of `map`, recorded as coming from `source`.
void record_origins(const YAML::Node& node, const std::string& path, const std::string& source,
                    Origins& origins) {
  origins[path] = source;
  if (!node.IsMap()) return;
  for (const auto& entry : node) {
    record_origins(entry.second, join_path(path, entry.first.Scalar()), source, origins);
  }
}

void erase_subtree(Origins& origins, const std::string& path) {
  origins.erase(path);
  const std::string prefix = path + ".";
  for (auto it = origins.lower_bound(prefix); it != origins.end() && it->first.rfind(prefix, 0) == 0;) {
    it = origins.erase(it);
  }
}

/// Keys must be plain names, each given once: yaml-cpp keeps both entries of a duplicated
/// key (`train:` twice) and lookups see only the first, so the second would be dropped silently.
void check_keys_are_scalars(const YAML::Node& map, const std::string& path, const std::string& source) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) {
      throw ConfigError(source + ": a key under '" + (path.empty() ? "<top level>" : path) +
                        "' is not a plain name: " + one_line(entry.first));
    }
    if (!seen.insert(entry.first.Scalar()).second) {
      throw ConfigError(source + ":" + std::to_string(entry.first.Mark().line + 1) + ": key '" +
                        join_path(path, entry.first.Scalar()) + "' is given twice");
    }
    if (entry.second.IsMap()) check_keys_are_scalars(entry.second, join_path(path, entry.first.Scalar()), source);
  }
}

void copy_subtree(const Origins& from, const std::string& path, Origins& to) {
  if (auto it = from.find(path); it != from.end()) to[path] = it->second;
  const std::string prefix = path + ".";
  for (auto it = from.lower_bound(prefix); it != from.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    to[it->first] = it->second;
  }
}

/// Deep merge of `src` into `dst`: maps merge key by key, anything else replaces.
void merge(YAML::Node dst, const YAML::Node& src, const std::string& path, const Origins& src_origins,
           Origins& dst_origins) {
  for (const auto& entry : src) {
    const std::string key = entry.first.Scalar();
    const std::string child_path = join_path(path, key);
    const YAML::Node& const_dst = dst;  // const lookup: no node is created for a missing key
    const YAML::Node existing = const_dst[key];
    if (existing && existing.IsMap() && (entry.second.IsMap() || entry.second.IsNull())) {
      // An empty section ("train:" with everything commented out) changes nothing.
      if (entry.second.IsMap()) merge(dst[key], entry.second, child_path, src_origins, dst_origins);
      continue;
    }
    dst[key] = YAML::Clone(entry.second);
    erase_subtree(dst_origins, child_path);
    copy_subtree(src_origins, child_path, dst_origins);
  }
}

std::vector<std::string> base_paths(const YAML::Node& base, const std::string& source) {
  std::vector<std::string> paths;
  if (base.IsScalar()) {
    paths.push_back(base.Scalar());
  } else if (base.IsSequence()) {
    for (const auto& item : base) {
      if (!item.IsScalar()) break;
      paths.push_back(item.Scalar());
    }
    if (paths.size() != base.size()) paths.clear();
  }
  if (paths.empty() || std::any_of(paths.begin(), paths.end(), [](const auto& p) { return p.empty(); })) {
    throw ConfigError(source + ": key '_base_' must be a path or a list of paths, got " + one_line(base));
  }
  return paths;
}

SourcedTree parse_tree_impl(const std::string& text, const std::string& source, const fs::path& base_dir,
                            std::vector<std::string>& chain);

SourcedTree load_tree_impl(const fs::path& path, std::vector<std::string>& chain) {
  const std::string name = path.lexically_normal().string();
  if (std::find(chain.begin(), chain.end(), name) != chain.end()) {
    std::string cycle;
    for (const auto& c : chain) cycle += c + " -> ";
    throw ConfigError(chain.back() + ": _base_ cycle: " + cycle + name);
  }
  chain.push_back(name);
  SourcedTree tree = parse_tree_impl(read_file(path), path.string(), path.parent_path(), chain);
  chain.pop_back();
  return tree;
}

SourcedTree parse_tree_impl(const std::string& text, const std::string& source, const fs::path& base_dir,
                            std::vector<std::string>& chain) {
  YAML::Node doc = parse_yaml(text, source);
  SourcedTree tree;
  tree.source = source;
  if (doc.IsNull()) return tree;  // an empty file is an empty config
  if (!doc.IsMap()) {
    throw ConfigError(source + ": a config must be a mapping of sections (model:, train:, ...), got " +
                      one_line(doc));
  }
  check_keys_are_scalars(doc, "", source);
  if (const YAML::Node base = doc[kBaseKey]) {
    for (const auto& base_path : base_paths(base, source)) {
      const fs::path resolved = fs::path(base_path).is_absolute() ? fs::path(base_path) : base_dir / base_path;
      if (!fs::exists(resolved)) {
        throw ConfigError(source + ": _base_ '" + base_path + "' not found (" + resolved.string() + ")");
      }
      const SourcedTree parent = load_tree_impl(resolved, chain);
      merge(tree.root, parent.root, "", parent.origins, tree.origins);
    }
    doc.remove(kBaseKey);
  }
  Origins own;
  for (const auto& entry : doc) record_origins(entry.second, entry.first.Scalar(), source, own);
  merge(tree.root, doc, "", own, tree.origins);
  return tree;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(path);
  while (std::getline(in, part, '.')) parts.push_back(part);
  if (!path.empty() && path.back() == '.') parts.emplace_back();
  return parts;
}

}  // namespace

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string one_line(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  // A parsed node keeps its block style, which the emitter would honour; a flow-style
  // copy prints on one line (children of a flow collection are flow too).
  YAML::Node copy = YAML::Clone(node);
  copy.SetStyle(YAML::EmitterStyle::Flow);
  YAML::Emitter out;
  out << copy;
  std::string text = out.c_str();
  std::replace(text.begin(), text.end(), '\n', ' ');  // long flow text may wrap
  return text;
}

std::string SourcedTree::origin_of(const std::string& path) const {
  for (std::string p = path;;) {
    if (auto it = origins.find(p); it != origins.end()) return it->second;
    const auto dot = p.rfind('.');
    if (dot == std::string::npos) return source;
    p.resize(dot);
  }
}

SourcedTree load_tree(const fs::path& path) {
  std::vector<std::string> chain;
  return load_tree_impl(path, chain);
}

namespace {

/// The node at a dotted path, or an invalid node when any part is missing.
YAML::Node find_node(const YAML::Node& root, const std::vector<std::string>& keys) {
  YAML::Node walk;
  walk.reset(root);
  for (const auto& key : keys) {
    if (!walk.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& const_walk = walk;
    const YAML::Node child = const_walk[key];
    if (!child) return YAML::Node(YAML::NodeType::Undefined);
    walk.reset(child);
  }
  return walk;
}

/// Moves the key at `from` (a value or a whole section, with its origins) to `to`, merging
/// into what is there already. Nothing happens when `from` is absent.
void move_key(SourcedTree& tree, const std::string& from, const std::string& to) {
  const std::vector<std::string> from_keys = split_path(from);
  std::vector<std::string> parent_keys(from_keys.begin(), from_keys.end() - 1);
  YAML::Node parent = find_node(tree.root, parent_keys);
  if (!parent || !parent.IsMap()) return;
  const YAML::Node& const_parent = parent;
  if (!const_parent[from_keys.back()]) return;
  const YAML::Node value = YAML::Clone(const_parent[from_keys.back()]);
  parent.remove(from_keys.back());

  Origins moved;
  const std::string prefix = from + ".";
  for (auto it = tree.origins.begin(); it != tree.origins.end();) {
    if (it->first == from || it->first.rfind(prefix, 0) == 0) {
      moved[to + it->first.substr(from.size())] = it->second;
      it = tree.origins.erase(it);
    } else {
      ++it;
    }
  }
  YAML::Node patch;
  patch.reset(value);
  const std::vector<std::string> to_keys = split_path(to);
  for (auto it = to_keys.rbegin(); it != to_keys.rend(); ++it) {
    YAML::Node wrapper(YAML::NodeType::Map);
    wrapper[*it] = patch;
    patch.reset(wrapper);
  }
  merge(tree.root, patch, "", moved, tree.origins);
}

}  // namespace

void migrate(SourcedTree& tree) {
  const YAML::Node& root = tree.root;
  if (const YAML::Node version = root["version"]; version && !(version.IsScalar() && version.Scalar() == "1"))
    return;  // current (or a value that validation refuses with its own message)
  // Version 1 -> 2: the two-stage sections move under model.two_stage, the embedding size
  // becomes model.embedding_dim, and loss weights are keyed by the model's loss names.
  move_key(tree, "model.embedding.dim", "model.embedding_dim");
  for (const char* section : {"rpn", "roi_heads", "embedding"})
    move_key(tree, std::string("model.") + section, std::string("model.two_stage.") + section);
  const std::pair<const char*, const char*> loss_names[] = {{"rpn_objectness", "loss_objectness"},
                                                            {"rpn_box", "loss_rpn_box_reg"},
                                                            {"box", "loss_box_reg"},
                                                            {"detection", "loss_detection"},
                                                            {"reid", "loss_reid"}};
  for (const auto& [old_name, new_name] : loss_names)
    move_key(tree, std::string("train.loss_weights.") + old_name, std::string("train.loss_weights.") + new_name);
  tree.root["version"] = kConfigVersion;
  tree.origins["version"] = tree.source + " (migrated from version 1)";
}

SourcedTree parse_tree(const std::string& text, const std::string& source, const fs::path& base_dir) {
  std::vector<std::string> chain{source};
  return parse_tree_impl(text, source, base_dir, chain);
}

void apply_override(SourcedTree& tree, const std::string& override_text) {
  const std::string label = "override '" + override_text + "'";
  const auto eq = override_text.find('=');
  const std::vector<std::string> keys = split_path(override_text.substr(0, eq));
  if (eq == std::string::npos || keys.empty() ||
      std::any_of(keys.begin(), keys.end(), [](const auto& k) { return k.empty(); })) {
    throw ConfigError(label + ": expected KEY=VALUE with a dotted key, e.g. train.lr=0.003");
  }
  const YAML::Node value = parse_yaml(override_text.substr(eq + 1), label);

  // A section replaced by a value ("model=3") would silently drop all of it; refuse.
  // (yaml-cpp nodes are references: assigning one Node variable to another would write
  // into the tree, so walking rebinds with reset().)
  YAML::Node walk;
  walk.reset(tree.root);
  std::string prefix;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    prefix = join_path(prefix, keys[i]);
    const YAML::Node& const_walk = walk;
    const YAML::Node child = const_walk[keys[i]];
    if (!child || child.IsNull()) break;
    if (!child.IsMap()) throw ConfigError(label + ": '" + prefix + "' is a value, not a section");
    walk.reset(child);
  }

  // The override becomes a one-key tree {a: {b: {c: value}}} merged like a file.
  YAML::Node patch;
  patch.reset(value);
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) {
    YAML::Node wrapper(YAML::NodeType::Map);
    wrapper[*it] = patch;
    patch.reset(wrapper);
  }
  Origins patch_origins;
  std::string section;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    section = join_path(section, keys[i]);
    // Sections the override creates are attributed to it; existing ones keep their file.
    if (!tree.origins.count(section)) patch_origins[section] = label;
  }
  record_origins(value, override_text.substr(0, eq), label, patch_origins);
  merge(tree.root, patch, "", patch_origins, tree.origins);
}

}  // namespace psearch::config::detail
