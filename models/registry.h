// The one list of model families ditserve knows: each names its output kind and a loader for its part of the
// pipeline (runtime/family.h); the shared core (runtime::DiffusionPipeline) does the rest.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ditserve/model_info.h"
#include "ditserve/status.h"
#include "engine/runtime/diffusion_pipeline.h"

namespace ditserve::models {

using FamilyLoader =
    std::function<StatusOr<std::unique_ptr<runtime::FamilyModel>>(const runtime::PipelineOptions&)>;

struct ModelFamily {
  std::string name;  // model.json "family"
  OutputKind output = OutputKind::kImage;
  FamilyLoader load;  // null: recognised but not implemented in this build
};

const std::vector<ModelFamily>& AllFamilies();

// The family's pipeline, or an error naming the family when it is unknown, not implemented, or its
// model.json says another output kind.
StatusOr<std::unique_ptr<runtime::DiffusionPipeline>> CreatePipeline(const runtime::PipelineOptions& options);

}  // namespace ditserve::models
