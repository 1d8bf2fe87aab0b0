#pragma once
// Internal to src/psearch/config: range and consistency checks with the file of each key.
#include <functional>
#include <string>

#include "psearch/config/config.h"

namespace psearch::config::detail {

/// Throws ConfigError "<origin(path)>: key 'path' must be ..., got ..." for the first
/// value out of range.
void validate_with_origins(const Config& config, const std::function<std::string(const std::string&)>& origin);

}  // namespace psearch::config::detail
