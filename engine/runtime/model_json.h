// A family's view of its model.json (docs/model_format.md): typed lookups by dotted key path whose errors
// name the file and the key, so every family's config loader reports bad exports the same way.
//
//   ASSIGN_OR_RETURN(ModelJson j, ModelJson::Load(dir));
//   try { c.layers = j.Get<int64_t>("transformer.num_layers"); c.theta = j.Get<double>("rope_theta", 256.0); }
//   catch (const ModelJson::Error& e) { return InvalidArgument(e.what()); }
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "ditserve/status.h"

namespace ditserve::runtime {

class ModelJson {
 public:
  // A missing or mistyped key: what() names the file and the key.
  struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  // Parses <dir>/model.json. NotFound when it cannot be opened, InvalidArgument when it is not JSON.
  static StatusOr<ModelJson> Load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::string& file() const { return file_; }
  const nlohmann::json& root() const { return root_; }
  // <dir>/<rel>
  std::string Path(const std::string& rel) const { return dir_ + "/" + rel; }

  // The value at a dotted path ("vae.scaling_factor"), or null when absent (or JSON null).
  const nlohmann::json* Find(const std::string& dotted) const;
  // Throws Error when the key is absent or has another type.
  template <typename T>
  T Get(const std::string& key) const {
    const nlohmann::json* v = Find(key);
    if (v == nullptr) throw Error(file_ + ": key '" + key + "' is missing");
    try {
      return v->get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(file_ + ": key '" + key + "' has the wrong type: " + e.what());
    }
  }
  template <typename T>
  T Get(const std::string& key, T fallback) const {
    return Find(key) != nullptr ? Get<T>(key) : fallback;
  }
  // NotFound naming the key unless <dir>/<the key's value> is a regular file.
  Status RequireFile(const std::string& key) const;

 private:
  std::string dir_, file_;
  nlohmann::json root_;
};

}  // namespace ditserve::runtime
