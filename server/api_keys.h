// API keys: bearer tokens in gRPC metadata ("authorization: Bearer KEY"), read from a file the operator
// may rewrite and reload with SIGHUP. Keys are never logged; a lookup compares against every key in
// constant time per key so the answer's timing does not reveal a prefix.
//
// File format: one key per line, "KEY" or "KEY ROLE" with ROLE one of readonly (ListModels and
// GetServerStatus), user (also Generate; the default), admin (also the admin-only status fields: worker
// pids and devices, failure details). Blank lines and lines starting with '#' are ignored.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::server {

enum class Role { kReadOnly = 0, kUser = 1, kAdmin = 2 };

class ApiKeys {
 public:
  // INVALID_ARGUMENT / NOT_FOUND naming the file and line (never the key) on a bad file.
  static StatusOr<std::unique_ptr<ApiKeys>> Load(const std::string& path);
  // Re-reads the file; on error the keys in use stay and the error is returned.
  Status Reload();
  std::optional<Role> Lookup(const std::string& key) const;
  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string key;
    Role role;
  };
  static StatusOr<std::vector<Entry>> Parse(const std::string& path);
  explicit ApiKeys(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
};

}  // namespace ditserve::server
