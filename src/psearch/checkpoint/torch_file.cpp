#include "psearch/checkpoint/torch_file.h"

#include <ATen/ops/empty.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <unordered_map>

#include "psearch/checkpoint/pickle_machine.h"
#include "psearch/checkpoint/torch_object.h"
#include "psearch/util/strings.h"

namespace psearch::checkpoint {
namespace {

using pickle::Value;
using pickle::ValuePtr;
using Kind = Value::Kind;

/// torch.save names a storage by its legacy typed class, e.g. torch.FloatStorage.
c10::ScalarType storage_dtype(const std::string& global) {
  static const std::unordered_map<std::string, c10::ScalarType> table = {
      {"torch.FloatStorage", c10::kFloat},      {"torch.DoubleStorage", c10::kDouble},
      {"torch.HalfStorage", c10::kHalf},        {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.LongStorage", c10::kLong},        {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort},      {"torch.CharStorage", c10::kChar},
      {"torch.ByteStorage", c10::kByte},        {"torch.BoolStorage", c10::kBool},
      {"torch.ComplexFloatStorage", c10::kComplexFloat},
      {"torch.ComplexDoubleStorage", c10::kComplexDouble},
      {"torch.storage.UntypedStorage", c10::kByte},
  };
  auto it = table.find(global);
  if (it == table.end()) throw std::runtime_error("unsupported storage type " + global);
  return it->second;
}

std::vector<int64_t> int_list(const ValuePtr& v, const char* what) {
  if (v->kind != Kind::Tuple && v->kind != Kind::List)
    throw std::runtime_error(std::string("tensor ") + what + " is not a tuple");
  std::vector<int64_t> out;
  for (const auto& item : v->items) out.push_back(item->integer);
  return out;
}

/// Interprets the torch-specific parts of a torch.save pickle: storages live in zip
/// records named by persistent ids; tensors are views rebuilt over them.
class TorchUnpickler {
 public:
  explicit TorchUnpickler(caffe2::serialize::PyTorchStreamReader& zip) : zip_(zip) {}

  ValuePtr load() {
    auto [data, size] = zip_.getRecord("data.pkl");
    const std::string program(static_cast<const char*>(data.get()), size);
    pickle::Hooks hooks;
    hooks.call = [this](const ValuePtr& callable, const ValuePtr& args) { return call(callable, args); };
    hooks.persistent_load = [this](const ValuePtr& pid) { return storage(pid); };
    return pickle::run(program, hooks);
  }

 private:
  ValuePtr call(const ValuePtr& callable, const ValuePtr& args) {
    const std::string& name = callable->text;
    const auto& a = args->items;
    if (name == "collections.OrderedDict") return Value::make(Kind::Dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4) throw std::runtime_error(name + " with too few arguments");
      return rebuild_tensor(a[0], a[1]->integer, int_list(a[2], "size"), int_list(a[3], "stride"));
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      return a.at(0);  // a Parameter is stored as its data tensor
    }
    if (name == "torch._tensor._rebuild_from_type_v2") {
      return call(a.at(0), a.at(2));  // (rebuild function, subclass, args, state)
    }
    // LibTorch's own pickler (torch::pickle_save) tags containers with their TorchScript
    // type and writes typed lists through builders; the value is the first argument.
    if (name == "torch.jit._pickle.restore_type_tag" || name == "torch.jit._pickle.build_intlist" ||
        name == "torch.jit._pickle.build_doublelist" || name == "torch.jit._pickle.build_boollist" ||
        name == "torch.jit._pickle.build_tensorlist" || name == "torch.jit._pickle.build_genericlist") {
      return a.at(0);
    }
    // Anything else (torch.device, argparse.Namespace, ...) is kept opaque: it is not
    // needed for weights, and failing here would reject checkpoints with extra metadata.
    auto obj = Value::make(Kind::Object);
    obj->text = name;
    return obj;
  }

  ValuePtr storage(const ValuePtr& pid) {
    const auto& p = pid->items;
    if (pid->kind != Kind::Tuple || p.size() < 5 || p[0]->text != "storage")
      throw std::runtime_error("unexpected persistent id (not a storage)");
    const std::string& key = p[2]->text;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;  // views share one storage

    const c10::ScalarType dtype = storage_dtype(p[1]->text);
    const int64_t numel = p[4]->integer;
    auto [data, size] = zip_.getRecord("data/" + key);
    const size_t expected = static_cast<size_t>(numel) * c10::elementSize(dtype);
    if (size != expected)
      throw std::runtime_error("storage " + key + " holds " + std::to_string(size) +
                               " bytes, expected " + std::to_string(expected));
    at::Tensor flat = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (size) std::memcpy(flat.data_ptr(), data.get(), size);
    auto v = Value::make(Kind::Tensor);
    v->tensor = flat;
    storages_.emplace(key, v);
    return v;
  }

  static ValuePtr rebuild_tensor(const ValuePtr& storage, int64_t offset, const std::vector<int64_t>& sizes,
                                 const std::vector<int64_t>& strides) {
    if (storage->kind != Kind::Tensor) throw std::runtime_error("tensor without a storage");
    auto v = Value::make(Kind::Tensor);
    // as_strided over the shared flat storage keeps views of one storage views, as in Python.
    v->tensor = storage->tensor.as_strided(sizes, strides, offset);
    return v;
  }

  caffe2::serialize::PyTorchStreamReader& zip_;
  std::unordered_map<std::string, ValuePtr> storages_;
};

std::string key_text(const ValuePtr& key) {
  if (key->kind == Kind::String) return key->text;
  if (key->kind == Kind::Int) return std::to_string(key->integer);
  return "?";
}

void flatten(const ValuePtr& v, const std::string& prefix, TensorMap& out) {
  const auto join = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };
  switch (v->kind) {
    case Kind::Tensor: out[prefix] = v->tensor; break;
    case Kind::Dict:
      for (const auto& [key, value] : v->entries) flatten(value, join(key_text(key)), out);
      break;
    case Kind::List:
    case Kind::Tuple:
      for (size_t i = 0; i < v->items.size(); ++i) flatten(v->items[i], join(std::to_string(i)), out);
      break;
    default: break;
  }
}

/// The first four bytes of `path` (fewer when the file is shorter).
std::string read_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open file");
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  return std::string(magic, static_cast<size_t>(in.gcount()));
}

bool is_zip(const std::string& magic) { return magic == std::string("PK\x03\x04", 4); }
bool is_legacy_pickle(const std::string& magic) { return !magic.empty() && static_cast<uint8_t>(magic[0]) == 0x80; }

/// LibTorch archives are TorchScript modules: they carry constants.pkl next to data.pkl.
FileKind zip_kind(caffe2::serialize::PyTorchStreamReader& zip) {
  if (zip.hasRecord("constants.pkl")) return FileKind::kLibTorchArchive;
  return zip.hasRecord("data.pkl") ? FileKind::kTorchSave : FileKind::kOther;
}

/// Tells a zip checkpoint from the legacy (PyTorch < 1.6) pickle format before parsing,
/// so the error can say what the file is.
void check_container(const std::string& path) {
  const std::string magic = read_magic(path);
  if (magic.size() < 4) throw std::runtime_error(path + ": file is empty or truncated, not a torch.save checkpoint");
  if (is_zip(magic)) return;
  if (is_legacy_pickle(magic))
    throw std::runtime_error(path + ": legacy torch.save format (PyTorch < 1.6); re-save it with a newer "
                                    "PyTorch: torch.save(torch.load(f), f2)");
  throw std::runtime_error(path + ": not a torch.save checkpoint (no zip header)");
}

}  // namespace

FileKind file_kind(const std::string& path) {
  const std::string magic = read_magic(path);
  if (magic.size() == 4 && is_legacy_pickle(magic)) return FileKind::kLegacyPickle;
  if (!is_zip(magic)) return FileKind::kOther;
  try {
    caffe2::serialize::PyTorchStreamReader zip(path);
    return zip_kind(zip);
  } catch (const c10::Error&) {
    return FileKind::kOther;
  }
}

TensorMap load_tensors(const std::string& path) {
  check_container(path);
  try {
    caffe2::serialize::PyTorchStreamReader zip(path);
    if (zip_kind(zip) != FileKind::kLibTorchArchive) {
      ValuePtr root = TorchUnpickler(zip).load();
      TensorMap out;
      flatten(root, "", out);
      return out;
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": corrupt checkpoint: " + util::first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": corrupt checkpoint: " + util::first_line(e.what()));
  }
  // Only a LibTorch archive gets here; thrown outside the try, whose handlers would call it corrupt.
  throw std::runtime_error(path + ": a LibTorch archive (a psearch training checkpoint?), not a torch.save weight "
                                  "file; psearch checkpoints go to eval --checkpoint, train --resume or "
                                  "train.init_from, and psearch inspect lists them");
}

pickle::ValuePtr load_object(const std::string& path) {
  check_container(path);
  try {
    caffe2::serialize::PyTorchStreamReader zip(path);
    return TorchUnpickler(zip).load();
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": corrupt torch.save file: " + util::first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": corrupt torch.save file: " + util::first_line(e.what()));
  }
}

}  // namespace psearch::checkpoint
