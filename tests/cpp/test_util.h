#pragma once
// Helpers shared by the C++ tests.
#include <cstdlib>
#include <string>

namespace psearch::test {

/// Directory of the fixtures written by tests/python/make_fixtures.py.
inline std::string fixtures_dir() {
  const char* env = std::getenv("PSEARCH_FIXTURES_DIR");
  return env && *env ? env : PSEARCH_FIXTURES_DIR;
}
inline std::string fixture(const std::string& name) { return fixtures_dir() + "/" + name; }

}  // namespace psearch::test
