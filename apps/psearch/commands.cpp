#include "commands.h"

#include <algorithm>
#include <utility>

namespace psearch::cli {
namespace {

std::vector<std::pair<int, CommandAdder>>& registry() {
  static std::vector<std::pair<int, CommandAdder>> commands;  // built before main() runs
  return commands;
}

}  // namespace

CommandRegistrar::CommandRegistrar(int rank, CommandAdder add) { registry().emplace_back(rank, std::move(add)); }

std::vector<CommandAdder> registered_commands() {
  auto commands = registry();
  std::stable_sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<CommandAdder> out;
  for (auto& c : commands) out.push_back(c.second);
  return out;
}

}  // namespace psearch::cli
