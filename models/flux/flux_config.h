// Everything the FLUX pipeline reads from model.json (docs/model_format.md), parsed once at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ditserve/status.h"
#include <nlohmann/json.hpp>

namespace ditserve::models::flux {

struct FluxConfig {
  std::string dir;
  at::ScalarType dtype = at::kFloat;  // of the TorchScript weights; latents and embeddings use it too

  // transformer
  std::string transformer_file;
  int64_t in_channels = 64;
  int64_t num_layers = 19;
  int64_t num_single_layers = 38;
  int64_t num_attention_heads = 24;
  std::vector<int64_t> axes_dims_rope{16, 56, 56};
  double rope_theta = 10000.0;
  bool guidance_embeds = false;

  // text encoders and tokenizers
  std::string text_encoder_file;       // CLIP: ids [B, 77] -> pooled [B, 768]
  int64_t clip_max_length = 77;
  std::string text_encoder_2_file;     // T5: ids [B, L] -> hidden [B, L, 4096]
  int64_t t5_max_sequence_length = 512;
  std::string clip_vocab, clip_merges, t5_spiece;

  // vae
  std::string vae_file;
  int64_t vae_scale_factor = 8;
  double scaling_factor = 0.3611;
  double shift_factor = 0.1159;
  bool vae_parallel_rows = false;  // "vae.parallel": "rows": the decoder may be split by rows over ranks

  // scheduler_config.json as exported (runtime::MakeScheduler builds one per request), and what
  // FluxPipeline's calculate_shift reads from it (with the pipeline's defaults).
  nlohmann::json scheduler;
  int64_t base_image_seq_len = 256, max_image_seq_len = 4096;
  double base_shift = 0.5, max_shift = 1.15;

  int64_t latent_channels() const { return in_channels / 4; }
  std::string Path(const std::string& rel) const { return dir + "/" + rel; }

  // Reads and validates <dir>/model.json; errors name the file and key.
  static StatusOr<FluxConfig> Load(const std::string& dir);
};

}  // namespace ditserve::models::flux
