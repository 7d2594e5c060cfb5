#include "engine/runtime/model_json.h"

#include <filesystem>
#include <fstream>

namespace ditserve::runtime {

StatusOr<ModelJson> ModelJson::Load(const std::string& dir) {
  ModelJson j;
  j.dir_ = dir;
  j.file_ = dir + "/model.json";
  std::ifstream in(j.file_);
  if (!in) return NotFound("cannot open " + j.file_);
  try {
    j.root_ = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(j.file_ + ": invalid JSON: " + e.what());
  }
  if (!j.root_.is_object()) return InvalidArgument(j.file_ + ": top level must be an object");
  return j;
}

const nlohmann::json* ModelJson::Find(const std::string& dotted) const {
  const nlohmann::json* cur = &root_;
  size_t pos = 0;
  while (true) {
    const size_t dot = dotted.find('.', pos);
    const std::string part = dotted.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(part);
    if (it == cur->end() || it->is_null()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

Status ModelJson::RequireFile(const std::string& key) const {
  std::string rel;
  try {
    rel = Get<std::string>(key);
  } catch (const Error& e) {
    return InvalidArgument(e.what());
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(Path(rel), ec)) {
    return NotFound(file_ + ": key '" + key + "' names " + rel + ", which does not exist in " + dir_);
  }
  return Status::Ok();
}

}  // namespace ditserve::runtime
