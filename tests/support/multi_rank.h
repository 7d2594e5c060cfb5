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

}  // namespace ditserve::testing
