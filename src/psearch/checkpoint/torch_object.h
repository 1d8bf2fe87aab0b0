#pragma once
/// Reading a whole torch.save file as the object tree Python saved (dicts, lists, strings,
/// numbers, tensors), for files that carry more than tensors: evaluation results, metadata.
#include <string>

#include "psearch/checkpoint/pickle_machine.h"

namespace psearch::checkpoint {

/// Loads the object that `torch.save(obj, path)` wrote. Tensors come back on the CPU as
/// views of their storages; unknown classes become opaque Value::Kind::Object leaves.
/// Throws std::runtime_error naming the file on an unreadable, non-zip or corrupt file.
pickle::ValuePtr load_object(const std::string& path);

}  // namespace psearch::checkpoint
