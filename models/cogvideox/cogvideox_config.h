// Everything the CogVideoX pipeline reads from model.json (docs/models/cogvideox.md), parsed once at load.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditserve/status.h"

namespace ditserve::models::cogvideox {

struct CogVideoXConfig {
  std::string dir;
  std::string variant;                // "2b", "5b" or "1.5"
  at::ScalarType dtype = at::kFloat;  // of every exported module; latents and embeddings use it too

  // transformer
  std::string transformer_file = "transformer.pt";
  int64_t in_channels = 16;
  int64_t num_layers = 30;
  int64_t num_attention_heads = 30;
  int64_t attention_head_dim = 64;
  int64_t patch_size = 2;
  int64_t patch_size_t = 0;  // 0: no temporal patches (1.0 models); 2 for CogVideoX 1.5
  bool rotary = false;       // 3-D RoPE (5b, 1.5); else 2b's fixed sin-cos positions

  // text: T5, always padded to max_sequence_length (226), no mask
  std::string text_encoder_file = "text_encoder.pt";
  int64_t max_sequence_length = 226;
  std::string spiece = "tokenizer/spiece.model";

  // vae
  std::string vae_file = "vae_decoder.pt";
  int64_t vae_scale_factor = 8;
  int64_t temporal_compression_ratio = 4;
  double scaling_factor = 1.15258426;
  bool vae_parallel_rows = false;  // "vae.parallel": "rows": the decoder splits on height over a group's ranks

  nlohmann::json scheduler;  // scheduler_config.json as exported

  std::string Path(const std::string& rel) const { return dir + "/" + rel; }
  // Reads and validates <dir>/model.json: errors name the file and key; a dtype the variant cannot run in
  // (float16 for 5b / 1.5: NaN, black video; bfloat16 for 2b, trained in fp16) is refused.
  static StatusOr<CogVideoXConfig> Load(const std::string& dir);
};

}  // namespace ditserve::models::cogvideox
