#pragma once
/// Where this process stands in a data-parallel job, read from the environment that
/// PyTorch's launcher `torchrun` sets (and that Slurm / Kubernetes job templates set the
/// same way): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. `psearch train
/// --nproc N` sets the same variables for the processes it starts.
#include <cstdint>
#include <map>
#include <string>

namespace psearch::distributed {

struct Environment {
  int rank = 0;        ///< 0 .. world_size-1; rank 0 writes checkpoints and logs
  int world_size = 1;  ///< processes in the job
  int local_rank = 0;  ///< rank among the processes of this machine (picks cuda:local_rank)
  std::string master_addr = "127.0.0.1";  ///< host of rank 0's rendezvous store
  int master_port = 29500;                 ///< its TCP port

  /// More than one process: gradients, OIM memory and stop requests are shared.
  bool distributed() const { return world_size > 1; }

  /// The variables a child process of a launcher needs, as NAME -> value.
  std::map<std::string, std::string> variables() const;
};

/// Reads the variables above; absent WORLD_SIZE means a single process (the others are
/// then ignored). Malformed or inconsistent values (RANK outside [0, WORLD_SIZE), a missing
/// MASTER_PORT, a port outside 1..65535) throw std::runtime_error naming the variable.
Environment environment_from_variables();

}  // namespace psearch::distributed
