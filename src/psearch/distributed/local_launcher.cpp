#include "psearch/distributed/local_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "psearch/distributed/environment.h"

extern char** environ;

namespace psearch::distributed {
namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void remember_signal(int signal) { g_forward_signal = signal; }

/// A TCP port that is free now on loopback (the kernel's pick); rank 0 binds it moments later.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("cannot open a socket to find a free port for the job's store");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot find a free loopback port for the job's store");
  return ntohs(address.sin_port);
}

/// The parent's environment with `overrides` replacing or adding variables.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (overrides.count(entry.substr(0, entry.find('='))) == 0) env.push_back(entry);
  }
  for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

std::vector<std::string> own_arguments_without(const std::string& name) {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    const size_t end = all.find('\0', start);
    args.push_back(all.substr(start, end - start));
    start = end == std::string::npos ? all.size() : end + 1;
  }
  std::vector<std::string> kept;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == name) {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind(name + "=", 0) == 0) continue;
    kept.push_back(args[i]);
  }
  return kept;
}

int run_local_job(int nproc, const std::vector<std::string>& arguments, int grace_seconds) {
  Environment job;
  job.world_size = nproc;
  job.master_addr = "127.0.0.1";
  const char* port = std::getenv("MASTER_PORT");
  job.master_port = port != nullptr && *port != '\0' ? std::atoi(port) : free_port();
  std::cerr << "launching " << nproc << " processes (store at 127.0.0.1:" << job.master_port << ")" << std::endl;

  auto previous_int = std::signal(SIGINT, remember_signal);
  auto previous_term = std::signal(SIGTERM, remember_signal);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    job.rank = job.local_rank = rank;
    std::vector<std::string> argv{"/proc/self/exe"};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    std::map<std::string, std::string> variables = job.variables();
    // As torchrun: the ranks share this machine's cores instead of each taking them all.
    if (const char* threads = std::getenv("OMP_NUM_THREADS"); threads == nullptr || *threads == '\0')
      variables["OMP_NUM_THREADS"] = std::to_string(std::max(1U, std::thread::hardware_concurrency() / nproc));
    std::vector<std::string> env = child_environment(variables);
    std::vector<char*> argv_p = pointers(argv), env_p = pointers(env);
    pid_t pid = 0;
    if (const int error = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv_p.data(), env_p.data());
        error != 0) {
      for (pid_t p : pids) ::kill(p, SIGKILL);
      throw std::runtime_error("cannot start rank " + std::to_string(rank) + ": " + std::strerror(error));
    }
    pids.push_back(pid);
  }

  int result = 0;
  std::vector<bool> alive(pids.size(), true);  // reaped pids may be reused: never signal them
  bool interrupted = false;  // Ctrl-C / SIGTERM: the ranks checkpoint and exit non-zero on purpose
  auto signal_alive = [&](int signal) {
    for (size_t r = 0; r < pids.size(); ++r)
      if (alive[r]) ::kill(pids[r], signal);
  };
  std::chrono::steady_clock::time_point kill_at = std::chrono::steady_clock::time_point::max();
  while (std::find(alive.begin(), alive.end(), true) != alive.end()) {
    if (const int forwarded = g_forward_signal.exchange(0); forwarded != 0) {
      interrupted = true;
      signal_alive(forwarded);
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      size_t rank = 0;
      while (rank < pids.size() && pids[rank] != done) ++rank;
      if (rank < pids.size()) alive[rank] = false;
      const int code = exit_status(status);
      if (code != 0 && result == 0) {
        result = code;
        if (!interrupted)
          std::cerr << "rank " << rank << " failed (exit status " << code << "); stopping the others" << std::endl;
        signal_alive(SIGTERM);
        kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
      }
      continue;
    }
    if (std::chrono::steady_clock::now() > kill_at) {
      signal_alive(SIGKILL);
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  return result;
}

}  // namespace psearch::distributed
