#include "models/mochi/mochi_config.h"

#include "engine/runtime/model_json.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::models::mochi {

StatusOr<MochiConfig> MochiConfig::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(runtime::ModelJson j, runtime::ModelJson::Load(dir));
  const std::string& file = j.file();
  MochiConfig c;
  c.dir = dir;
  std::string dtype;
  try {
    if (j.Get<std::string>("family") != "mochi") return InvalidArgument(file + ": key 'family' is not \"mochi\"");
    dtype = j.Get<std::string>("dtype", "float32");
    c.transformer_file = j.Get<std::string>("transformer.file", "transformer.pt");
    c.in_channels = j.Get<int64_t>("transformer.in_channels");
    c.patch_size = j.Get<int64_t>("transformer.patch_size");
    c.num_layers = j.Get<int64_t>("transformer.num_layers");
    c.num_attention_heads = j.Get<int64_t>("transformer.num_attention_heads");
    c.attention_head_dim = j.Get<int64_t>("transformer.attention_head_dim");
    c.pooled_projection_dim = j.Get<int64_t>("transformer.pooled_projection_dim");
    c.text_encoder_file = j.Get<std::string>("text_encoder.file", "text_encoder.pt");
    c.max_sequence_length = j.Get<int64_t>("text_encoder.max_sequence_length", 256);
    c.text_dim = j.Get<int64_t>("text_encoder.d_model");
    c.force_zeros_for_empty_prompt = j.Get<bool>("text_encoder.force_zeros_for_empty_prompt", true);
    c.spiece = j.Get<std::string>("tokenizer.spiece", "tokenizer/spiece.model");
    c.vae_file = j.Get<std::string>("vae.file", "vae_decoder.pt");
    c.vae_scale_factor = j.Get<int64_t>("vae.scale_factor");
    c.vae_temporal_scale_factor = j.Get<int64_t>("vae.temporal_scale_factor");
    c.scaling_factor = j.Get<double>("vae.scaling_factor");
    c.latents_mean = j.Get<std::vector<double>>("vae.latents_mean");
    c.latents_std = j.Get<std::vector<double>>("vae.latents_std");
    c.vae_parallel_rows = j.Get<std::string>("vae.parallel", "") == "rows";
    if (j.Find("scheduler") == nullptr) return InvalidArgument(file + ": key 'scheduler' is missing");
    c.scheduler = *j.Find("scheduler");
  } catch (const runtime::ModelJson::Error& e) {
    return InvalidArgument(e.what());
  }
  if (dtype == "float32") {
    c.dtype = at::kFloat;
  } else if (dtype == "bfloat16") {
    c.dtype = at::kBFloat16;
  } else {
    return InvalidArgument(file + ": key 'dtype' must be float32 or bfloat16, got \"" + dtype + "\"");
  }
  RETURN_IF_ERROR(runtime::MakeScheduler(c.scheduler, file + ": scheduler").status());
  if (c.in_channels < 1 || c.patch_size < 1 || c.num_layers < 1 || c.num_attention_heads < 1 ||
      c.attention_head_dim < 2 || c.attention_head_dim % 2 != 0) {
    return InvalidArgument(file + ": transformer sizes must be positive (attention_head_dim even)");
  }
  if (static_cast<int64_t>(c.latents_mean.size()) != c.in_channels ||
      static_cast<int64_t>(c.latents_std.size()) != c.in_channels) {
    return InvalidArgument(file + ": vae.latents_mean and vae.latents_std need transformer.in_channels (" +
                           std::to_string(c.in_channels) + ") values");
  }
  if (c.vae_scale_factor < 1 || c.vae_temporal_scale_factor < 1 || c.scaling_factor == 0.0) {
    return InvalidArgument(file + ": vae.scale_factor / temporal_scale_factor must be >= 1, scaling_factor != 0");
  }
  if (c.max_sequence_length < 1 || c.max_sequence_length > 4096) {
    return InvalidArgument(file + ": text_encoder.max_sequence_length must be in [1, 4096]");
  }
  for (const char* key : {"transformer.file", "text_encoder.file", "vae.file", "tokenizer.spiece"}) {
    if (j.Find(key) != nullptr) RETURN_IF_ERROR(j.RequireFile(key));
  }
  return c;
}

}  // namespace ditserve::models::mochi
