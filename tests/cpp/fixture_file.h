#pragma once
// A tensor file written by tests/python/make_fixtures.py, read once per test binary.
#include <ATen/core/Tensor.h>

#include <stdexcept>
#include <string>

#include "psearch/checkpoint/torch_file.h"
#include "test_util.h"

namespace psearch::test {

class FixtureFile {
 public:
  /// name: the file in the fixtures folder, e.g. "retinanet.pt".
  explicit FixtureFile(std::string name) : name_(std::move(name)), tensors_(checkpoint::load_tensors(fixture(name_))) {}

  /// The tensor stored under `key`; throws naming the file and the key when there is none.
  at::Tensor get(const std::string& key) const {
    const auto it = tensors_.find(key);
    if (it == tensors_.end()) throw std::runtime_error(name_ + " has no tensor '" + key + "'");
    return it->second;
  }

 private:
  std::string name_;
  checkpoint::TensorMap tensors_;
};

}  // namespace psearch::test
