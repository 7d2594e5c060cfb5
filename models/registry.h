// The one list of model families ditserve knows. A family names its output kind, the shape of its
// latents and how it conditions, and a factory for its Pipeline (null while not implemented yet).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ditserve/model_info.h"
#include "ditserve/status.h"
#include "models/pipeline.h"

namespace ditserve::models {

using PipelineFactory = std::function<StatusOr<std::unique_ptr<Pipeline>>(const PipelineOptions&)>;

struct ModelFamily {
  std::string name;  // model.json "family"
  OutputKind output = OutputKind::kImage;
  int latent_dims = 2;           // 2 = [C, H, W] images, 3 = [C, F, H, W] video
  bool text_key_mask = false;    // text tokens are padded and masked in attention (key_mask)
  bool cfg_batch = false;        // classifier-free guidance runs cond+uncond as one batch (or split over cfg ranks)
  PipelineFactory factory;       // null: recognised but not implemented in this build
};

const std::vector<ModelFamily>& AllFamilies();
// nullptr when no family has this name.
const ModelFamily* FindFamily(const std::string& name);
// The family's pipeline, or an error naming the family when it is unknown or not implemented.
StatusOr<std::unique_ptr<Pipeline>> CreatePipeline(const PipelineOptions& options);

}  // namespace ditserve::models
