// Multi-process tests: a test binary re-runs itself once per rank ("child mode") so each rank is a
// separate process with its own libtorch and c10d process groups, as in a real worker group.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace ditserve::testing {

// Starts /proc/self/exe with `args`; returns the pid (or -1).
pid_t SpawnSelf(const std::vector<std::string>& args);

// Waits for every pid; returns exit codes (128 + signal for signalled children). Kills the remaining
// ones after timeout_s so a deadlocked collective fails the test instead of hanging it.
std::vector<int> WaitChildren(const std::vector<pid_t>& pids, double timeout_s);

// One rank's exit code and what it wrote to its output file.
struct RankResult {
  int code = -1;
  std::string output;
};

// Runs `world` ranks of this binary, each as `--child <rank> <port> <output file> <args...>` (port: a free
// one for the group's TCPStore), waits for them (WaitChildren) and returns their results in rank order.
std::vector<RankResult> RunRanks(int world, const std::vector<std::string>& args, double timeout_s);

// The rank's arguments in child mode, or false when argv is not `--child <rank> <port> <file> ...`.
struct ChildArgs {
  int rank = 0, port = 0;
  std::string output;
  std::vector<std::string> args;  // the `args` given to RunRanks
};
bool ParseChildArgs(int argc, char** argv, ChildArgs* out);

}  // namespace ditserve::testing
