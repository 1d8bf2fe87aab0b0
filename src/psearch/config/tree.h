#pragma once
// Internal to src/psearch/config: the merged YAML tree of a config file with its bases and
// overrides, and where each key came from (for error messages that name the right file).
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace psearch::config::detail {

/// Dotted key path ("train.lr") -> the file or override that set it last.
using Origins = std::map<std::string, std::string>;

struct SourcedTree {
  YAML::Node root = YAML::Node(YAML::NodeType::Map);
  Origins origins;
  std::string source;  ///< the file (or text source) the tree was read from

  /// Where `path` was set: its own origin, else that of its closest enclosing section,
  /// else `source`.
  std::string origin_of(const std::string& path) const;
};

/// Reads `path` and its `_base_` chain. Throws ConfigError naming the file that is
/// missing, unreadable, malformed or part of an inheritance cycle.
SourcedTree load_tree(const std::filesystem::path& path);

/// Parses YAML text; `_base_` paths are resolved against `base_dir`.
SourcedTree parse_tree(const std::string& text, const std::string& source,
                       const std::filesystem::path& base_dir);

/// Applies one "a.b.c=value" override (value in YAML syntax) to the tree.
/// Throws ConfigError naming the override when it is malformed.
void apply_override(SourcedTree& tree, const std::string& override_text);

/// Rewrites a version-1 tree (no `version` key, or `version: 1`) into the current layout
/// (docs/config.md, "Versions"); a current tree is left as it is. Origins move with keys.
void migrate(SourcedTree& tree);

/// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string join_path(const std::string& parent, const std::string& key);

/// A node rendered on one line in YAML flow style, for error messages ("[16, abc]").
std::string one_line(const YAML::Node& node);

}  // namespace psearch::config::detail
