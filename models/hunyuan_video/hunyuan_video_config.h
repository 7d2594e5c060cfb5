// Everything the HunyuanVideo pipeline reads from model.json (docs/models/hunyuan_video.md), parsed once at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditserve/status.h"

namespace ditserve::models::hunyuan_video {

// diffusers' AutoencoderKLHunyuanVideo tiling parameters, in pixels (its attribute names).
struct VaeTiling {
  bool spatial = true;  // enable_tiling(): frames larger than a tile decode as blended tiles
  bool framewise = true;  // use_framewise_decoding (diffusers' default): long clips decode as blended chunks
  int64_t min_height = 256, min_width = 256, min_frames = 16;
  int64_t stride_height = 192, stride_width = 192, stride_frames = 12;
};

struct HunyuanVideoConfig {
  std::string dir;
  at::ScalarType dtype = at::kFloat;

  // transformer
  std::string transformer_file;
  int64_t in_channels = 16, out_channels = 16;
  int64_t num_layers = 20, num_single_layers = 40;
  int64_t num_attention_heads = 24, attention_head_dim = 128;
  int64_t patch_size = 2, patch_size_t = 1;
  std::vector<int64_t> rope_axes_dim{16, 56, 56};
  double rope_theta = 256.0;

  // text: Llama (hidden_states[-3] over the templated prompt) + CLIP-L pooled
  std::string text_encoder_file, tokenizer_dir, prompt_template;
  int64_t crop_start = 95, max_sequence_length = 256;
  std::string text_encoder_2_file, clip_vocab, clip_merges;
  int64_t clip_max_length = 77;

  // vae
  std::string vae_file;
  int64_t vae_scale_factor = 8, vae_temporal_scale_factor = 4;
  double scaling_factor = 0.476986;
  VaeTiling tiling;
  bool vae_parallel_rows = false;  // "vae.parallel": "rows": a tile's decode may be split by rows over ranks

  nlohmann::json scheduler;  // scheduler_config.json as exported

  std::string Path(const std::string& rel) const { return dir + "/" + rel; }
  // Latent frames of a num_frames video: (num_frames - 1) / 4 + 1.
  int64_t LatentFrames(int64_t num_frames) const { return (num_frames - 1) / vae_temporal_scale_factor + 1; }

  static StatusOr<HunyuanVideoConfig> Load(const std::string& dir);
};

}  // namespace ditserve::models::hunyuan_video
