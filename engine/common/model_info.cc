// ReadModelInfo: the coordinator-side view of an exported model directory (docs/model_format.md).
#include "ditserve/model_info.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace ditserve {

std::string IntRange::Describe() const {
  std::ostringstream os;
  os << "[" << min << ", " << max << "]";
  if (multiple_of > 1 && offset != 0) {
    os << ", " << multiple_of << "k+" << offset;
  } else if (multiple_of > 1) {
    os << ", multiple of " << multiple_of;
  }
  return os.str();
}

namespace {

using nlohmann::json;

// Small typed accessors whose errors name the file and the dotted key path.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Status Error(const std::string& key, const std::string& what) const {
    return InvalidArgument(file_ + ": key '" + key + "' " + what);
  }

  // Returns the member `name` of `obj` (an object at path `where`), or nullptr when absent.
  const json* Find(const json& obj, const std::string& name) const {
    auto it = obj.find(name);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }

  StatusOr<const json*> Object(const json& obj, const std::string& where, const std::string& name,
                               bool required) const {
    const json* v = Find(obj, name);
    const std::string key = Join(where, name);
    if (!v) {
      if (required) return Error(key, "is missing");
      return static_cast<const json*>(nullptr);
    }
    if (!v->is_object()) return Error(key, "must be an object");
    return v;
  }

  StatusOr<std::string> String(const json& obj, const std::string& where, const std::string& name,
                               const std::string* fallback = nullptr) const {
    const json* v = Find(obj, name);
    const std::string key = Join(where, name);
    if (!v) {
      if (fallback) return *fallback;
      return Error(key, "is missing");
    }
    if (!v->is_string()) return Error(key, "must be a string");
    return v->get<std::string>();
  }

  StatusOr<int64_t> Int(const json& obj, const std::string& where, const std::string& name,
                        const int64_t* fallback = nullptr) const {
    const json* v = Find(obj, name);
    const std::string key = Join(where, name);
    if (!v) {
      if (fallback) return *fallback;
      return Error(key, "is missing");
    }
    if (!v->is_number_integer()) return Error(key, "must be an integer");
    return v->get<int64_t>();
  }

  StatusOr<double> Number(const json& obj, const std::string& where, const std::string& name,
                          const double* fallback = nullptr) const {
    const json* v = Find(obj, name);
    const std::string key = Join(where, name);
    if (!v) {
      if (fallback) return *fallback;
      return Error(key, "is missing");
    }
    if (!v->is_number()) return Error(key, "must be a number");
    return v->get<double>();
  }

  StatusOr<bool> Bool(const json& obj, const std::string& where, const std::string& name,
                      bool fallback) const {
    const json* v = Find(obj, name);
    if (!v) return fallback;
    if (!v->is_boolean()) return Error(Join(where, name), "must be a boolean");
    return v->get<bool>();
  }

  // {"min", "max", "multiple_of"?, "default"} -> IntRange, validated.
  StatusOr<IntRange> Range(const json& limits, const std::string& name, const IntRange* fallback) const {
    ASSIGN_OR_RETURN(const json* r, Object(limits, "limits", name, fallback == nullptr));
    if (!r) return *fallback;
    const std::string where = "limits." + name;
    IntRange out;
    ASSIGN_OR_RETURN(out.min, Int(*r, where, "min"));
    ASSIGN_OR_RETURN(out.max, Int(*r, where, "max"));
    const int64_t one = 1;
    ASSIGN_OR_RETURN(out.multiple_of, Int(*r, where, "multiple_of", &one));
    const int64_t zero = 0;
    ASSIGN_OR_RETURN(out.offset, Int(*r, where, "offset", &zero));
    ASSIGN_OR_RETURN(out.default_value, Int(*r, where, "default"));
    if (out.min < 1 || out.max < out.min) return Error(where, "must satisfy 1 <= min <= max");
    if (out.multiple_of < 1) return Error(where + ".multiple_of", "must be >= 1");
    if (out.offset < 0 || out.offset >= out.multiple_of) return Error(where + ".offset", "must be in [0, multiple_of)");
    if (!out.Contains(out.default_value)) {
      return Error(where + ".default", "(" + std::to_string(out.default_value) + ") is outside " +
                                           out.Describe());
    }
    return out;
  }

 private:
  static std::string Join(const std::string& where, const std::string& name) {
    return where.empty() ? name : where + "." + name;
  }
  std::string file_;
};

}  // namespace

StatusOr<ModelInfo> ReadModelInfo(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string file = (fs::path(dir) / "model.json").string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("model directory " + dir + " does not exist");
  if (!fs::exists(file, ec)) return NotFound(file + " does not exist (not a ditserve model directory?)");

  std::ifstream in(file);
  if (!in) return NotFound("cannot open " + file);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    return InvalidArgument(file + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) return InvalidArgument(file + ": top level must be an object");

  Reader rd(file);
  const int64_t one = 1;
  ASSIGN_OR_RETURN(int64_t format_version, rd.Int(j, "", "format_version", &one));
  if (format_version != 1) {
    return rd.Error("format_version", "is " + std::to_string(format_version) + "; this build reads version 1");
  }

  ModelInfo info;
  info.dir = dir;
  ASSIGN_OR_RETURN(info.family, rd.String(j, "", "family"));
  ASSIGN_OR_RETURN(info.name, rd.String(j, "", "name"));
  const std::string no_variant;
  ASSIGN_OR_RETURN(info.variant, rd.String(j, "", "variant", &no_variant));
  if (info.name.empty()) return rd.Error("name", "must not be empty");

  // Exports of video families say "output": "video"; the first exports (FLUX) predate the key.
  const std::string default_output = "image";
  ASSIGN_OR_RETURN(std::string output, rd.String(j, "", "output", &default_output));
  if (output == "image") {
    info.output = OutputKind::kImage;
  } else if (output == "video") {
    info.output = OutputKind::kVideo;
  } else {
    return rd.Error("output", "must be \"image\" or \"video\", got \"" + output + "\"");
  }

  const std::string default_cfg = "true_cfg";
  ASSIGN_OR_RETURN(std::string cfg, rd.String(j, "", "cfg", &default_cfg));
  if (cfg == "true_cfg") {
    info.cfg = CfgRule::kTrueCfg;
  } else if (cfg == "guidance_scale") {
    info.cfg = CfgRule::kGuidanceScale;
  } else {
    return rd.Error("cfg", "must be \"true_cfg\" or \"guidance_scale\", got \"" + cfg + "\"");
  }

  const std::string default_dtype = "float32";
  ASSIGN_OR_RETURN(info.weights, rd.String(j, "", "dtype", &default_dtype));
  ASSIGN_OR_RETURN(const json* transformer, rd.Object(j, "", "transformer", false));
  if (transformer) {
    // older exports have no "weights": their GEMMs hold the model's dtype
    const std::string dtype = info.weights;
    ASSIGN_OR_RETURN(info.weights, rd.String(*transformer, "transformer", "weights", &dtype));
    ASSIGN_OR_RETURN(info.guidance_embeds, rd.Bool(*transformer, "transformer", "guidance_embeds", false));
    const int64_t unknown_heads = 0;
    ASSIGN_OR_RETURN(info.attention_heads, rd.Int(*transformer, "transformer", "num_attention_heads", &unknown_heads));
    if (info.attention_heads < 0) return rd.Error("transformer.num_attention_heads", "must be >= 0");
  }

  ASSIGN_OR_RETURN(const json* limits, rd.Object(j, "", "limits", true));
  ASSIGN_OR_RETURN(info.width, rd.Range(*limits, "width", nullptr));
  ASSIGN_OR_RETURN(info.height, rd.Range(*limits, "height", nullptr));
  ASSIGN_OR_RETURN(info.steps, rd.Range(*limits, "num_inference_steps", nullptr));
  const IntRange single_frame{1, 1, 1, 1};
  ASSIGN_OR_RETURN(info.num_frames,
                   rd.Range(*limits, "num_frames", info.output == OutputKind::kImage ? &single_frame : nullptr));

  const double default_guidance = 3.5;
  ASSIGN_OR_RETURN(double guidance, rd.Number(*limits, "limits", "default_guidance_scale", &default_guidance));
  info.default_guidance_scale = static_cast<float>(guidance);
  const int64_t default_chars = 4096;
  ASSIGN_OR_RETURN(int64_t max_chars, rd.Int(*limits, "limits", "max_prompt_chars", &default_chars));
  if (max_chars < 1 || max_chars > (int64_t{1} << 24)) return rd.Error("limits.max_prompt_chars", "must be in [1, 2^24]");
  info.max_prompt_chars = static_cast<uint32_t>(max_chars);
  const int64_t no_fps = 0;
  ASSIGN_OR_RETURN(int64_t fps, rd.Int(*limits, "limits", "default_fps", &no_fps));
  if (fps < 0 || fps > 1000) return rd.Error("limits.default_fps", "must be in [0, 1000]");
  info.default_fps = static_cast<uint32_t>(fps);
  return info;
}

}  // namespace ditserve
