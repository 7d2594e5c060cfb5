// What the coordinator needs to know about an exported model without loading it: read from the
// model directory's model.json (written by scripts/export_model.py). No libtorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ditserve/status.h"

namespace ditserve {

struct IntRange {
  int64_t min = 0;
  int64_t max = 0;
  int64_t multiple_of = 1;
  int64_t default_value = 0;
  int64_t offset = 0;  // allowed values are offset + k * multiple_of (video frame counts: 4k+1)
  bool Contains(int64_t v) const {
    return v >= min && v <= max && (multiple_of <= 1 || (v - offset) % multiple_of == 0);
  }
  std::string Describe() const;  // "[16, 2048], multiple of 16" or "[1, 129], 4k+1"
};

enum class OutputKind { kImage, kVideo };

// When a request runs classifier-free guidance (a negative branch per step), by the model's pipeline:
// kTrueCfg (FLUX, HunyuanVideo: guidance is distilled into the model): true_cfg_scale > 1 and a negative
// prompt; kGuidanceScale (CogVideoX, Mochi): guidance_scale > 1, the negative prompt may be empty.
enum class CfgRule { kTrueCfg, kGuidanceScale };

struct ModelInfo {
  std::string name;    // the name clients use; from config, defaults to model.json's name
  std::string family;  // registry key: "flux", ...
  std::string variant; // "dev", "schnell", ...
  std::string dir;     // model directory
  OutputKind output = OutputKind::kImage;
  CfgRule cfg = CfgRule::kTrueCfg;  // model.json "cfg": "true_cfg" (default) or "guidance_scale"
  IntRange width, height, num_frames, steps;
  float default_guidance_scale = 3.5f;
  bool guidance_embeds = false;
  int64_t attention_heads = 0;  // of the transformer; 0 = not stated (Ulysses degree checked at load)
  std::string weights;          // the transformer's GEMM weights: model.json's dtype, or e.g. "fp8_e4m3"
  uint32_t max_prompt_chars = 4096;
  uint32_t default_fps = 0;
};

// Parses <dir>/model.json. Errors name the file and the offending key.
StatusOr<ModelInfo> ReadModelInfo(const std::string& dir);

}  // namespace ditserve
