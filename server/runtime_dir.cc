#include "server/runtime_dir.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <spdlog/spdlog.h>

namespace ditserve::server {
namespace {

constexpr char kPrefix[] = "ditserve-";
constexpr char kOwnerFile[] = "owner.pid";

}  // namespace

int RuntimeDir::RemoveStale(const std::string& parent) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kPrefix, 0) != 0) continue;
    struct stat st;
    if (lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) continue;
    std::ifstream owner(entry.path() / kOwnerFile);
    long pid = 0;
    if (!(owner >> pid) || pid <= 0) continue;  // not one of ours (or still being made)
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its owner is alive
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
    if (!rm) {
      ++removed;
      spdlog::info("removed stale runtime dir {} (owner pid {} is gone)", entry.path().string(), pid);
    }
  }
  return removed;
}

StatusOr<std::unique_ptr<RuntimeDir>> RuntimeDir::Create(const std::string& parent) {
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return FailedPrecondition("server.runtime_dir: cannot create " + parent + ": " + ec.message());
  RemoveStale(parent);
  std::string tmpl = parent + "/" + kPrefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    return FailedPrecondition("server.runtime_dir: cannot create a directory in " + parent + ": " +
                              std::strerror(errno));
  }
  std::unique_ptr<RuntimeDir> dir(new RuntimeDir(buf.data()));
  std::ofstream owner(dir->path_ + "/" + kOwnerFile);
  owner << getpid() << "\n";
  if (!owner.flush()) return FailedPrecondition("server.runtime_dir: cannot write in " + dir->path_);
  return dir;
}

RuntimeDir::~RuntimeDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace ditserve::server
