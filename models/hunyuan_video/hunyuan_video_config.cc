#include "models/hunyuan_video/hunyuan_video_config.h"

#include <filesystem>

#include "engine/runtime/model_json.h"
#include "engine/runtime/schedulers/scheduler.h"

namespace ditserve::models::hunyuan_video {

StatusOr<HunyuanVideoConfig> HunyuanVideoConfig::Load(const std::string& dir) {
  ASSIGN_OR_RETURN(runtime::ModelJson j, runtime::ModelJson::Load(dir));
  const std::string& file = j.file();
  HunyuanVideoConfig c;
  c.dir = dir;
  std::string dtype;
  try {
    if (j.Get<std::string>("family") != "hunyuan_video") {
      return InvalidArgument(file + ": key 'family' is not \"hunyuan_video\"");
    }
    dtype = j.Get<std::string>("dtype", "float32");
    c.transformer_file = j.Get<std::string>("transformer.file");
    c.in_channels = j.Get<int64_t>("transformer.in_channels");
    c.out_channels = j.Get<int64_t>("transformer.out_channels", c.in_channels);
    c.num_layers = j.Get<int64_t>("transformer.num_layers");
    c.num_single_layers = j.Get<int64_t>("transformer.num_single_layers");
    c.num_attention_heads = j.Get<int64_t>("transformer.num_attention_heads");
    c.attention_head_dim = j.Get<int64_t>("transformer.attention_head_dim");
    c.patch_size = j.Get<int64_t>("transformer.patch_size");
    c.patch_size_t = j.Get<int64_t>("transformer.patch_size_t", 1);
    c.rope_axes_dim = j.Get<std::vector<int64_t>>("transformer.rope_axes_dim");
    c.rope_theta = j.Get<double>("transformer.rope_theta", 256.0);

    c.text_encoder_file = j.Get<std::string>("text_encoder.file");
    c.prompt_template = j.Get<std::string>("text_encoder.template");
    c.crop_start = j.Get<int64_t>("text_encoder.crop_start");
    c.max_sequence_length = j.Get<int64_t>("text_encoder.max_sequence_length", 256);
    c.tokenizer_dir = j.Get<std::string>("tokenizer.dir", "tokenizer");
    c.text_encoder_2_file = j.Get<std::string>("text_encoder_2.file");
    c.clip_max_length = j.Get<int64_t>("tokenizer_2.model_max_length", 77);
    c.clip_vocab = j.Get<std::string>("tokenizer_2.vocab");
    c.clip_merges = j.Get<std::string>("tokenizer_2.merges");

    c.vae_file = j.Get<std::string>("vae.file");
    c.vae_scale_factor = j.Get<int64_t>("vae.scale_factor");
    c.vae_temporal_scale_factor = j.Get<int64_t>("vae.temporal_scale_factor", 4);
    c.scaling_factor = j.Get<double>("vae.scaling_factor");
    // Exports before the split-aware mid-block attention have no "parallel": they decode on the leader alone.
    c.vae_parallel_rows = j.Get<std::string>("vae.parallel", "") == "rows";
    VaeTiling& t = c.tiling;
    t.spatial = j.Get<bool>("vae.tiling.enabled", true);
    t.framewise = j.Get<bool>("vae.tiling.framewise", true);
    t.min_height = j.Get<int64_t>("vae.tiling.tile_sample_min_height", t.min_height);
    t.min_width = j.Get<int64_t>("vae.tiling.tile_sample_min_width", t.min_width);
    t.min_frames = j.Get<int64_t>("vae.tiling.tile_sample_min_num_frames", t.min_frames);
    t.stride_height = j.Get<int64_t>("vae.tiling.tile_sample_stride_height", t.stride_height);
    t.stride_width = j.Get<int64_t>("vae.tiling.tile_sample_stride_width", t.stride_width);
    t.stride_frames = j.Get<int64_t>("vae.tiling.tile_sample_stride_num_frames", t.stride_frames);
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
  if (c.patch_size_t != 1 || c.patch_size < 1) {
    return InvalidArgument(file + ": transformer.patch_size_t must be 1 and patch_size >= 1");
  }
  int64_t rope_sum = 0;
  for (int64_t d : c.rope_axes_dim) rope_sum += d;
  if (c.rope_axes_dim.size() != 3 || rope_sum != c.attention_head_dim) {
    return InvalidArgument(file + ": transformer.rope_axes_dim must be 3 dims summing to attention_head_dim");
  }
  if (c.crop_start < 0 || c.max_sequence_length < 1) {
    return InvalidArgument(file + ": text_encoder.crop_start must be >= 0 and max_sequence_length >= 1");
  }
  const VaeTiling& t = c.tiling;
  if (c.vae_scale_factor < 1 || c.vae_temporal_scale_factor < 1 || t.stride_height < 1 || t.stride_width < 1 ||
      t.stride_frames < 1 || t.min_height < t.stride_height || t.min_width < t.stride_width ||
      t.min_frames < t.stride_frames || t.min_height % c.vae_scale_factor != 0 ||
      t.min_frames % c.vae_temporal_scale_factor != 0 || t.stride_frames % c.vae_temporal_scale_factor != 0) {
    return InvalidArgument(file + ": vae scale factors or tiling sizes are inconsistent");
  }
  if (c.scaling_factor == 0.0) return InvalidArgument(file + ": key 'vae.scaling_factor' must not be 0");
  for (const std::string* rel : {&c.transformer_file, &c.text_encoder_file, &c.text_encoder_2_file, &c.vae_file,
                                 &c.clip_vocab, &c.clip_merges}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(c.Path(*rel), ec)) {
      return NotFound(file + " names " + *rel + ", which does not exist in " + dir);
    }
  }
  return c;
}

}  // namespace ditserve::models::hunyuan_video
