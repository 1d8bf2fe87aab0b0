// libFuzzer target: arbitrary bytes as a .mat file, read by every .mat reader of the
// CUHK-SYSU and PRW loaders and walked generically through MatFile / MatNode. Readers may
// throw std::exception (that is how corrupt input is reported); anything else (a crash, a
// sanitizer report, another exception type) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/mat_file.h"
#include "psearch/data/prw.h"

namespace {

using psearch::data::MatFile;
using psearch::data::MatNode;

/// Reads every value below `node` (bounded, so deep or wide inputs stay fast).
void walk(const MatNode& node, int depth, long& budget) {
  if (depth > 8 || budget <= 0) return;
  --budget;
  switch (node.kind()) {
    case MatNode::Kind::kStruct:
      for (size_t i = 0; i < node.numel() && budget > 0; ++i, --budget) {  // budget counts elements too
        for (const auto& f : node.field_names()) {
          try {
            walk(node.field(i, f), depth + 1, budget);
          } catch (const std::exception&) {
          }
        }
      }
      break;
    case MatNode::Kind::kCell:
      for (size_t i = 0; i < node.numel() && budget > 0; ++i, --budget) {
        try {
          walk(node.cell(i), depth + 1, budget);
        } catch (const std::exception&) {
        }
      }
      break;
    case MatNode::Kind::kChar:
      (void)node.string();
      break;
    case MatNode::Kind::kNumeric:
      if (node.numel() < (1u << 20)) (void)node.numbers();
      break;
    default:
      break;
  }
}

std::string temp_path() {
  static const std::string path = "/tmp/psearch_fuzz_mat_" + std::to_string(::getpid()) + ".mat";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = temp_path();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);

  using namespace psearch::data;
  const std::vector<std::function<void()>> readers = {
      [&] { read_cuhk_images(path); },
      [&] { read_cuhk_pool(path); },
      [&] { read_cuhk_train(path); },
      [&] {
        read_cuhk_protocol(path, {"TestG50", "TestG100", "Occlusion1", "Test_Size"});
      },
      [&] { read_prw_annotation(path); },
      [&] { read_prw_frame_list(path, "img_index_train"); },
      [&] { read_prw_frame_list(path, "img_index_test"); },
      [&] {
        MatFile file(path);
        for (const auto& name : file.variable_names()) {
          long budget = 20000;
          walk(file.read(name), 0, budget);
        }
      },
  };
  for (const auto& read : readers) {
    try {
      read();
    } catch (const std::exception&) {
      // Expected for corrupt input.
    }
  }
  return 0;
}
