#include "psearch/distributed/collectives.h"

#include <stdexcept>

namespace psearch::distributed {
namespace {
// One job per process, installed and removed by the trainer's thread; model code reads it
// from the same thread (forward passes run on the trainer's thread).
ModelCollectives* g_collectives = nullptr;
}  // namespace

ScopedModelCollectives::ScopedModelCollectives(ModelCollectives* collectives) {
  if (g_collectives != nullptr) throw std::logic_error("a data-parallel job is already installed in this process");
  g_collectives = collectives;
}

ScopedModelCollectives::~ScopedModelCollectives() { g_collectives = nullptr; }

bool in_job() { return g_collectives != nullptr; }

void all_reduce_sum(at::Tensor& values) {
  if (g_collectives != nullptr) g_collectives->all_reduce_sum(values);
}

at::Tensor all_gather_rows(const at::Tensor& rows) {
  return g_collectives != nullptr ? g_collectives->all_gather_rows(rows) : rows;
}

}  // namespace psearch::distributed
