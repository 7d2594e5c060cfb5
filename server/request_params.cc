#include "server/request_params.h"

namespace ditserve::server {

GenerateParams ToParams(const v1::GenerateRequest& r) {
  GenerateParams p;
  p.prompt = r.prompt();
  p.negative_prompt = r.negative_prompt();
  p.width = r.width();
  p.height = r.height();
  p.num_frames = r.num_frames() ? r.num_frames() : 1;
  p.steps = r.num_inference_steps();
  p.guidance_scale = r.guidance_scale();
  p.true_cfg_scale = r.has_true_cfg_scale() ? r.true_cfg_scale() : 1.f;
  p.seed = r.seed();
  p.cache_threshold = r.cache_threshold();
  p.fps = r.fps();
  p.use_dynamic_cfg = r.use_dynamic_cfg();
  p.format = r.output_format() == v1::OUTPUT_FORMAT_MP4 ? GenerateParams::Format::kMp4 : GenerateParams::Format::kPng;
  return p;
}

}  // namespace ditserve::server
