#pragma once
/// `psearch train --nproc N`: a one-machine launcher in the style of `torchrun
/// --nproc-per-node N`. It starts N copies of this program with the same arguments (less
/// --nproc) and the environment contract of environment.h (RANK = LOCAL_RANK = 0..N-1,
/// WORLD_SIZE = N, MASTER_ADDR = 127.0.0.1, MASTER_PORT = a free port unless set;
/// OMP_NUM_THREADS = cores / N unless set, so the ranks share the cores), then waits for them.
#include <string>
#include <vector>

namespace psearch::distributed {

/// Runs the job and returns its exit status: 0 when every rank succeeded, otherwise the
/// first failing rank's status (128 + signal for a rank killed by a signal). When one rank
/// fails the others are sent SIGTERM, and SIGKILL `grace_seconds` later. SIGINT / SIGTERM
/// sent to the launcher are passed on to the ranks (which then checkpoint and stop).
/// `arguments` excludes the program name.
int run_local_job(int nproc, const std::vector<std::string>& arguments, int grace_seconds = 30);

/// This process's arguments (from /proc/self/cmdline, program name excluded) without the
/// option `name` and its value ("--nproc 2" and "--nproc=2" forms).
std::vector<std::string> own_arguments_without(const std::string& name);

}  // namespace psearch::distributed
