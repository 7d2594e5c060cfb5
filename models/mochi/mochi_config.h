// Everything the Mochi pipeline reads from model.json (docs/models/mochi.md), parsed once at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditserve/status.h"

namespace ditserve::models::mochi {

struct MochiConfig {
  std::string dir;
  at::ScalarType dtype = at::kFloat;  // of the TorchScript weights; latents and embeddings use it too

  // transformer
  std::string transformer_file;
  int64_t in_channels = 12;
  int64_t patch_size = 2;
  int64_t num_layers = 48;
  int64_t num_attention_heads = 24;
  int64_t attention_head_dim = 128;
  int64_t pooled_projection_dim = 1536;

  // text encoder (T5 with the attention mask) and tokenizer
  std::string text_encoder_file, spiece;
  int64_t max_sequence_length = 256;
  int64_t text_dim = 4096;
  bool force_zeros_for_empty_prompt = true;

  // vae
  std::string vae_file;
  int64_t vae_scale_factor = 8, vae_temporal_scale_factor = 6;
  double scaling_factor = 1.0;
  std::vector<double> latents_mean, latents_std;  // per latent channel
  bool vae_parallel_rows = false;

  nlohmann::json scheduler;  // scheduler_config.json as exported

  std::string Path(const std::string& rel) const { return dir + "/" + rel; }
  int64_t hidden_size() const { return num_attention_heads * attention_head_dim; }

  // Reads and validates <dir>/model.json; errors name the file and key.
  static StatusOr<MochiConfig> Load(const std::string& dir);
};

}  // namespace ditserve::models::mochi
