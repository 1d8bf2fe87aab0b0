#pragma once
/// A small pickle virtual machine for the opcodes that `torch.save` emits (protocols
/// 2 to 5). It builds a tree of plain values; what a GLOBAL means when it is called
/// (REDUCE) and how persistent ids resolve is left to the caller through `Hooks`, so
/// this file knows nothing about tensors.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace psearch::checkpoint::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

/// One unpickled Python object. Containers are shared (memo entries and stack slots
/// point at the same object) because pickle mutates them after creation.
struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Global, Tensor, Object };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;                                     ///< String, Bytes; "module.name" of Global/Object
  std::vector<ValuePtr> items;                          ///< List, Tuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;   ///< Dict, in insertion order
  at::Tensor tensor;                                    ///< Tensor

  static ValuePtr make(Kind kind) {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    return v;
  }
  static ValuePtr make_string(std::string s) {
    auto v = make(Kind::String);
    v->text = std::move(s);
    return v;
  }
  static ValuePtr make_int(int64_t i) {
    auto v = make(Kind::Int);
    v->integer = i;
    return v;
  }
};

/// What the caller decides about globals and persistent ids.
struct Hooks {
  /// Called for REDUCE and NEWOBJ with the global ("module.name" in `callable->text`)
  /// and its argument tuple. Return the object to push.
  std::function<ValuePtr(const ValuePtr& callable, const ValuePtr& args)> call;
  /// Called for BINPERSID with the persistent id (a tuple in torch.save files).
  std::function<ValuePtr(const ValuePtr& pid)> persistent_load;
};

/// Runs the program in `data` until STOP and returns the result.
/// Throws std::runtime_error describing the first malformed or unsupported opcode.
ValuePtr run(const std::string& data, const Hooks& hooks);

}  // namespace psearch::checkpoint::pickle
