#include "psearch/distributed/environment.h"

#include <cstdlib>
#include <stdexcept>

namespace psearch::distributed {
namespace {

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

int integer_variable(const char* name, int low, int high) {
  const char* text = variable(name);
  if (text == nullptr) throw std::runtime_error(std::string(name) + " is not set (it is required when WORLD_SIZE is)");
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < low || value > high)
    throw std::runtime_error(std::string(name) + "=" + text + ": expected an integer in [" + std::to_string(low) + ", " +
                             std::to_string(high) + "]");
  return static_cast<int>(value);
}

}  // namespace

std::map<std::string, std::string> Environment::variables() const {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world_size)},
          {"LOCAL_RANK", std::to_string(local_rank)},
          {"MASTER_ADDR", master_addr},
          {"MASTER_PORT", std::to_string(master_port)}};
}

Environment environment_from_variables() {
  Environment e;
  if (variable("WORLD_SIZE") == nullptr) return e;
  e.world_size = integer_variable("WORLD_SIZE", 1, 1 << 20);
  if (e.world_size == 1) return e;
  e.rank = integer_variable("RANK", 0, e.world_size - 1);
  e.local_rank = variable("LOCAL_RANK") != nullptr ? integer_variable("LOCAL_RANK", 0, e.world_size - 1) : 0;
  if (const char* addr = variable("MASTER_ADDR")) e.master_addr = addr;
  e.master_port = integer_variable("MASTER_PORT", 1, 65535);
  return e;
}

}  // namespace psearch::distributed
