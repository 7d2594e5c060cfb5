#include "support/multi_rank.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/test_env.h"

extern char** environ;

namespace ditserve::testing {

pid_t SpawnSelf(const std::vector<std::string>& args) {
  std::vector<std::string> all{"/proc/self/exe"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

std::vector<int> WaitChildren(const std::vector<pid_t>& pids, double timeout_s) {
  std::vector<int> codes(pids.size(), -1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  size_t left = pids.size();
  while (left > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (codes[i] != -1 || pids[i] <= 0) continue;
      int st = 0;
      if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        codes[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        --left;
      }
    }
    if (left == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (codes[i] == -1 && pids[i] > 0) {
          kill(pids[i], SIGKILL);
          waitpid(pids[i], nullptr, 0);
          codes[i] = 128 + SIGKILL;
        }
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return codes;
}

std::vector<RankResult> RunRanks(int world, const std::vector<std::string>& args, double timeout_s) {
  // (No std::filesystem: libtorch.so, linked into these tests, exports a broken copy of some of its symbols.)
  char tmpl[] = "/tmp/ditserve_ranks_XXXXXX";
  std::vector<RankResult> results(world);
  if (mkdtemp(tmpl) == nullptr) return results;
  const std::string dir = tmpl;
  auto file = [&](int r) { return dir + "/rank" + std::to_string(r); };
  const std::string port = std::to_string(FreeTcpPort());
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> child{"--child", std::to_string(r), port, file(r)};
    child.insert(child.end(), args.begin(), args.end());
    pids.push_back(SpawnSelf(child));
  }
  const std::vector<int> codes = WaitChildren(pids, timeout_s);
  for (int r = 0; r < world; ++r) {
    results[r].code = pids[r] > 0 ? codes[r] : -1;
    std::ifstream in(file(r));
    std::stringstream text;
    text << in.rdbuf();
    results[r].output = text.str();
    std::remove(file(r).c_str());
  }
  rmdir(dir.c_str());
  return results;
}

bool ParseChildArgs(int argc, char** argv, ChildArgs* out) {
  if (argc < 5 || std::strcmp(argv[1], "--child") != 0) return false;
  out->rank = std::atoi(argv[2]);
  out->port = std::atoi(argv[3]);
  out->output = argv[4];
  out->args.assign(argv + 5, argv + argc);
  return true;
}

}  // namespace ditserve::testing
