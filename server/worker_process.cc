#include "server/worker_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

extern char** environ;

namespace ditserve::server {

WorkerProcess::WorkerProcess(std::string binary, std::vector<std::string> args, ExitCallback on_exit)
    : binary_(std::move(binary)), args_(std::move(args)), on_exit_(std::move(on_exit)) {}

WorkerProcess::~WorkerProcess() { Stop(5.0); }

bool WorkerProcess::Start(std::string* error) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary_.c_str()));
  for (const auto& a : args_) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The coordinator blocks termination signals in all its threads (a sigwait thread handles them);
  // the worker must start with them unblocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawn(&pid_, binary_.c_str(), nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *error = "cannot start " + binary_ + ": " + std::strerror(rc);
    pid_ = -1;
    return false;
  }
  running_ = true;
  monitor_ = std::thread([this] {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    running_ = false;
    if (on_exit_) on_exit_(pid_, status);
  });
  return true;
}

void WorkerProcess::Stop(double grace_seconds) {
  if (pid_ > 0 && running_) {
    kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_seconds);
    while (running_ && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (running_) kill(pid_, SIGKILL);
  }
  if (monitor_.joinable()) monitor_.join();
}

std::string WorkerProcess::DescribeExit(int s) {
  if (WIFEXITED(s)) return "exited with code " + std::to_string(WEXITSTATUS(s));
  if (WIFSIGNALED(s)) return std::string("killed by signal ") + strsignal(WTERMSIG(s));
  return "stopped";
}

}  // namespace ditserve::server
