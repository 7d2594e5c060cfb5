#include "models/cogvideox/cogvideox_config.h"

#include "engine/runtime/model_json.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::models::cogvideox {

StatusOr<CogVideoXConfig> CogVideoXConfig::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(runtime::ModelJson j, runtime::ModelJson::Load(dir));
  const std::string& file = j.file();
  CogVideoXConfig c;
  c.dir = dir;
  std::string dtype;
  try {
    if (j.Get<std::string>("family") != "cogvideox") return InvalidArgument(file + ": key 'family' is not \"cogvideox\"");
    c.variant = j.Get<std::string>("variant");
    dtype = j.Get<std::string>("dtype");
    c.transformer_file = j.Get<std::string>("transformer.file", c.transformer_file);
    c.in_channels = j.Get<int64_t>("transformer.in_channels");
    c.num_layers = j.Get<int64_t>("transformer.num_layers");
    c.num_attention_heads = j.Get<int64_t>("transformer.num_attention_heads");
    c.attention_head_dim = j.Get<int64_t>("transformer.attention_head_dim");
    c.patch_size = j.Get<int64_t>("transformer.patch_size");
    c.patch_size_t = j.Get<int64_t>("transformer.patch_size_t", 0);
    c.rotary = j.Get<bool>("transformer.use_rotary_positional_embeddings");
    c.text_encoder_file = j.Get<std::string>("text_encoder.file", c.text_encoder_file);
    c.max_sequence_length = j.Get<int64_t>("text_encoder.max_sequence_length");
    c.spiece = j.Get<std::string>("tokenizer.spiece", c.spiece);
    c.vae_file = j.Get<std::string>("vae.file", c.vae_file);
    c.vae_scale_factor = j.Get<int64_t>("vae.scale_factor");
    c.temporal_compression_ratio = j.Get<int64_t>("vae.temporal_compression_ratio");
    c.scaling_factor = j.Get<double>("vae.scaling_factor");
    c.vae_parallel_rows = j.Get<std::string>("vae.parallel", "") == "rows";
    if (j.Get<int64_t>("vae.frame_batch_size", 2) != 2) {
      return InvalidArgument(file + ": key 'vae.frame_batch_size' must be 2 (AutoencoderKLCogVideoX's)");
    }
    if (j.Find("scheduler") == nullptr) return InvalidArgument(file + ": key 'scheduler' is missing");
    c.scheduler = *j.Find("scheduler");
  } catch (const runtime::ModelJson::Error& e) {
    return InvalidArgument(e.what());
  }
  if (c.variant != "2b" && c.variant != "5b" && c.variant != "1.5") {
    return InvalidArgument(file + ": key 'variant' must be \"2b\", \"5b\" or \"1.5\", got \"" + c.variant + "\"");
  }
  if (dtype == "float32") {
    c.dtype = at::kFloat;
  } else if (dtype == "float16" && c.variant == "2b") {
    c.dtype = at::kHalf;
  } else if (dtype == "bfloat16" && c.variant != "2b") {
    c.dtype = at::kBFloat16;
  } else {
    return InvalidArgument(file + ": CogVideoX " + c.variant + " cannot run in dtype '" + dtype + "' (allowed: " +
                           (c.variant == "2b" ? "float16 (as trained), float32" :
                                                "bfloat16, float32; float16 overflows: NaN / black video") +
                           "); re-export with scripts/export_model.py --family cogvideox");
  }
  if (c.patch_size < 1 || c.patch_size_t < 0 || c.vae_scale_factor < 1 || c.temporal_compression_ratio < 1 ||
      c.max_sequence_length < 1 || c.scaling_factor == 0.0) {
    return InvalidArgument(file + ": transformer / vae sizes out of range");
  }
  RETURN_IF_ERROR(runtime::MakeScheduler(c.scheduler, file + ": scheduler").status());
  for (const char* key : {"transformer.file", "text_encoder.file", "vae.file"}) {
    if (j.Find(key) != nullptr) RETURN_IF_ERROR(j.RequireFile(key));
  }
  RETURN_IF_ERROR(j.RequireFile("tokenizer.spiece"));
  return c;
}

}  // namespace ditserve::models::cogvideox
