// The coordinator's private runtime directory (workers' unix sockets): parent/ditserve-XXXXXX made by
// mkdtemp (mode 0700, unpredictable name, so no other user can pre-create it or reach the sockets),
// removed with everything in it when the RuntimeDir is destroyed. Directories of earlier coordinators
// that are gone (killed, crashed) are removed at creation.
#pragma once

#include <memory>
#include <string>

#include "ditserve/status.h"

namespace ditserve::server {

class RuntimeDir {
 public:
  static StatusOr<std::unique_ptr<RuntimeDir>> Create(const std::string& parent);
  ~RuntimeDir();
  RuntimeDir(const RuntimeDir&) = delete;
  RuntimeDir& operator=(const RuntimeDir&) = delete;

  const std::string& path() const { return path_; }

  // Removes parent/ditserve-* directories owned by this user whose owner file names a process that no
  // longer exists; returns how many. Create calls it.
  static int RemoveStale(const std::string& parent);

 private:
  explicit RuntimeDir(std::string path) : path_(std::move(path)) {}
  const std::string path_;
};

}  // namespace ditserve::server
