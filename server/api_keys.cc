#include "server/api_keys.h"

#include <fstream>
#include <sstream>

namespace ditserve::server {
namespace {

// Constant time for equal-length inputs; a length mismatch only reveals the length.
bool SameKey(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

StatusOr<std::vector<ApiKeys::Entry>> ApiKeys::Parse(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("server.auth.api_keys_file: cannot open " + path);
  std::vector<Entry> entries;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::istringstream fields(line);
    std::string key, role, extra;
    if (!(fields >> key) || key[0] == '#') continue;
    fields >> role >> extra;
    const std::string where = path + ":" + std::to_string(n);
    if (!extra.empty()) return InvalidArgument(where + ": expected \"KEY [readonly|user|admin]\"");
    if (key.size() < 16) return InvalidArgument(where + ": key shorter than 16 characters");
    Entry e{key, Role::kUser};
    if (role == "readonly") {
      e.role = Role::kReadOnly;
    } else if (role == "admin") {
      e.role = Role::kAdmin;
    } else if (!role.empty() && role != "user") {
      return InvalidArgument(where + ": unknown role (allowed: readonly, user, admin)");
    }
    entries.push_back(std::move(e));
  }
  if (entries.empty()) return InvalidArgument("server.auth.api_keys_file: " + path + " has no keys");
  return entries;
}

StatusOr<std::unique_ptr<ApiKeys>> ApiKeys::Load(const std::string& path) {
  std::unique_ptr<ApiKeys> keys(new ApiKeys(path));
  RETURN_IF_ERROR(keys->Reload());
  return keys;
}

Status ApiKeys::Reload() {
  ASSIGN_OR_RETURN(std::vector<Entry> entries, Parse(path_));
  std::lock_guard<std::mutex> lock(mu_);
  entries_ = std::move(entries);
  return Status::Ok();
}

std::optional<Role> ApiKeys::Lookup(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<Role> found;
  for (const auto& e : entries_) {  // no early exit
    if (SameKey(e.key, key)) found = e.role;
  }
  return found;
}

size_t ApiKeys::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace ditserve::server
