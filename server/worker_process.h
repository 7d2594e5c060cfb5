// One worker OS process (RAII): spawned with posix_spawn, reaped by a monitor thread that reports its
// exit, terminated (SIGTERM, then SIGKILL after a grace period) on Stop() or destruction.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ditserve::server {

class WorkerProcess {
 public:
  using ExitCallback = std::function<void(pid_t pid, int wait_status)>;

  WorkerProcess(std::string binary, std::vector<std::string> args, ExitCallback on_exit);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // False with errno-based message on failure.
  bool Start(std::string* error);
  void Stop(double grace_seconds);
  pid_t pid() const { return pid_; }
  bool running() const { return running_.load(); }
  static std::string DescribeExit(int wait_status);

 private:
  const std::string binary_;
  const std::vector<std::string> args_;
  ExitCallback on_exit_;
  pid_t pid_ = -1;
  std::atomic<bool> running_{false};
  std::thread monitor_;
};

}  // namespace ditserve::server
