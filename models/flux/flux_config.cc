#include "models/flux/flux_config.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::models::flux {
namespace {

using nlohmann::json;

// Looks up a dotted path ("vae.scaling_factor"); throws std::runtime_error naming the key.
class Json {
 public:
  Json(const json& root, std::string file) : root_(root), file_(std::move(file)) {}

  const json* Find(const std::string& dotted) const {
    const json* cur = &root_;
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

  template <typename T>
  T Get(const std::string& key) const {
    const json* v = Find(key);
    if (!v) throw std::runtime_error(file_ + ": key '" + key + "' is missing");
    try {
      return v->get<T>();
    } catch (const json::exception& e) {
      throw std::runtime_error(file_ + ": key '" + key + "' has the wrong type: " + e.what());
    }
  }

  template <typename T>
  T Get(const std::string& key, T fallback) const {
    return Find(key) ? Get<T>(key) : fallback;
  }

 private:
  const json& root_;
  std::string file_;
};

StatusOr<at::ScalarType> ParseDtype(const std::string& file, const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "float16") return at::kHalf;
  return InvalidArgument(file + ": key 'dtype' must be float32, bfloat16 or float16, got \"" + s + "\"");
}

}  // namespace

StatusOr<FluxConfig> FluxConfig::Load(const std::string& dir) {
  const std::string file = dir + "/model.json";
  std::ifstream in(file);
  if (!in) return NotFound("cannot open " + file);
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    return InvalidArgument(file + ": invalid JSON: " + e.what());
  }

  FluxConfig c;
  c.dir = dir;
  std::string dtype;
  try {
    Json j(root, file);
    if (j.Get<std::string>("family") != "flux") return InvalidArgument(file + ": key 'family' is not \"flux\"");
    dtype = j.Get<std::string>("dtype", "float32");
    c.transformer_file = j.Get<std::string>("transformer.file", "transformer.pt");
    c.in_channels = j.Get<int64_t>("transformer.in_channels");
    c.num_layers = j.Get<int64_t>("transformer.num_layers");
    c.num_single_layers = j.Get<int64_t>("transformer.num_single_layers");
    c.num_attention_heads = j.Get<int64_t>("transformer.num_attention_heads", 24);
    c.axes_dims_rope = j.Get<std::vector<int64_t>>("transformer.axes_dims_rope");
    c.rope_theta = j.Get<double>("transformer.rope_theta", 10000.0);
    c.guidance_embeds = j.Get<bool>("transformer.guidance_embeds", false);

    c.text_encoder_file = j.Get<std::string>("text_encoder.file", "text_encoder.pt");
    c.clip_max_length = j.Get<int64_t>("tokenizer.model_max_length", j.Get<int64_t>("text_encoder.max_length", 77));
    c.text_encoder_2_file = j.Get<std::string>("text_encoder_2.file", "text_encoder_2.pt");
    c.t5_max_sequence_length = j.Get<int64_t>("text_encoder_2.max_sequence_length", 512);
    c.clip_vocab = j.Get<std::string>("tokenizer.vocab", "tokenizer/vocab.json");
    c.clip_merges = j.Get<std::string>("tokenizer.merges", "tokenizer/merges.txt");
    c.t5_spiece = j.Get<std::string>("tokenizer_2.spiece", "tokenizer_2/spiece.model");

    c.vae_file = j.Get<std::string>("vae.file", "vae_decoder.pt");
    c.vae_scale_factor = j.Get<int64_t>("vae.scale_factor");
    c.scaling_factor = j.Get<double>("vae.scaling_factor");
    c.shift_factor = j.Get<double>("vae.shift_factor", 0.0);
    // Older exports (plain ops) have no "parallel"; unknown layouts from newer exporters decode unsplit.
    c.vae_parallel_rows = j.Get<std::string>("vae.parallel", "") == "rows";
    if (!j.Find("scheduler")) return InvalidArgument(file + ": key 'scheduler' is missing");
  } catch (const std::runtime_error& e) {
    return InvalidArgument(e.what());
  }
  ASSIGN_OR_RETURN(c.dtype, ParseDtype(file, dtype));
  c.scheduler = root["scheduler"];
  RETURN_IF_ERROR(runtime::MakeScheduler(c.scheduler, file + ": scheduler").status());
  try {
    Json sc(c.scheduler, file + ": scheduler");
    c.base_image_seq_len = sc.Get<int64_t>("base_image_seq_len", 256);
    c.max_image_seq_len = sc.Get<int64_t>("max_image_seq_len", 4096);
    c.base_shift = sc.Get<double>("base_shift", 0.5);
    c.max_shift = sc.Get<double>("max_shift", 1.15);
  } catch (const std::runtime_error& e) {
    return InvalidArgument(e.what());
  }
  if (c.max_image_seq_len == c.base_image_seq_len) {
    return InvalidArgument(file + ": scheduler: max_image_seq_len must differ from base_image_seq_len");
  }

  if (c.in_channels <= 0 || c.in_channels % 4 != 0) {
    return InvalidArgument(file + ": key 'transformer.in_channels' must be a positive multiple of 4");
  }
  if (c.axes_dims_rope.empty()) return InvalidArgument(file + ": key 'transformer.axes_dims_rope' is empty");
  for (int64_t d : c.axes_dims_rope) {
    if (d <= 0 || d % 2 != 0) return InvalidArgument(file + ": key 'transformer.axes_dims_rope' needs even dims");
  }
  if (c.vae_scale_factor < 1) return InvalidArgument(file + ": key 'vae.scale_factor' must be >= 1");
  if (c.scaling_factor == 0.0) return InvalidArgument(file + ": key 'vae.scaling_factor' must not be 0");
  if (c.clip_max_length < 2 || c.t5_max_sequence_length < 1 || c.t5_max_sequence_length > 512) {
    return InvalidArgument(file + ": text max lengths out of range (CLIP >= 2, 1 <= T5 <= 512)");
  }
  for (const std::string* rel : {&c.transformer_file, &c.text_encoder_file, &c.text_encoder_2_file, &c.vae_file,
                                 &c.clip_vocab, &c.clip_merges, &c.t5_spiece}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(c.Path(*rel), ec)) {
      return NotFound(file + " names " + *rel + ", which does not exist in " + dir);
    }
  }
  return c;
}

}  // namespace ditserve::models::flux
