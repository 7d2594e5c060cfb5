#include "models/registry.h"

#include "models/cogvideox/cogvideox_model.h"
#include "models/flux/flux_model.h"
#include "models/hunyuan_video/hunyuan_video_model.h"
#include "models/mochi/mochi_model.h"

namespace ditserve::models {

const std::vector<ModelFamily>& AllFamilies() {
  static const auto* families = new std::vector<ModelFamily>{
      {"flux", OutputKind::kImage, flux::LoadFlux},
      {"hunyuan_video", OutputKind::kVideo, hunyuan_video::LoadHunyuanVideo},
      {"mochi", OutputKind::kVideo, mochi::LoadMochi},
      {"cogvideox", OutputKind::kVideo, cogvideox::LoadCogVideoX},
  };
  return *families;
}

StatusOr<std::unique_ptr<runtime::DiffusionPipeline>> CreatePipeline(const runtime::PipelineOptions& options) {
  const std::string& name = options.info.family;
  const ModelFamily* family = nullptr;
  std::string known;
  for (const ModelFamily& f : AllFamilies()) {
    if (f.name == name) family = &f;
    known += (known.empty() ? "" : ", ") + f.name;
  }
  if (family == nullptr) {
    return InvalidArgument(options.info.dir + "/model.json: unknown model family '" + name + "' (known: " + known + ")");
  }
  if (!family->load) return FailedPrecondition("model family '" + name + "' is not implemented in this build");
  if (family->output != options.info.output) {
    return InvalidArgument(options.info.dir + "/model.json: family '" + name + "' produces " +
                           (family->output == OutputKind::kImage ? "images" : "videos"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<runtime::FamilyModel> model, family->load(options));
  return std::make_unique<runtime::DiffusionPipeline>(options, std::move(model));
}

}  // namespace ditserve::models
