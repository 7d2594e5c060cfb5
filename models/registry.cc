#include "models/registry.h"

#include "models/flux/flux_pipeline.h"

namespace ditserve::models {

const std::vector<ModelFamily>& AllFamilies() {
  static const auto* families = new std::vector<ModelFamily>{
      {"flux", OutputKind::kImage, /*latent_dims=*/2, /*text_key_mask=*/false, /*cfg_batch=*/false,
       [](const PipelineOptions& o) -> StatusOr<std::unique_ptr<Pipeline>> {
         ASSIGN_OR_RETURN(auto p, flux::FluxPipeline::Load(o));
         return std::unique_ptr<Pipeline>(std::move(p));
       }},
      {"hunyuan_video", OutputKind::kVideo, 3, true, true, nullptr},
      {"mochi", OutputKind::kVideo, 3, true, true, nullptr},
      {"cogvideox", OutputKind::kVideo, 3, false, true, nullptr},
  };
  return *families;
}

const ModelFamily* FindFamily(const std::string& name) {
  for (const ModelFamily& f : AllFamilies()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

StatusOr<std::unique_ptr<Pipeline>> CreatePipeline(const PipelineOptions& options) {
  const std::string& name = options.info.family;
  const ModelFamily* family = FindFamily(name);
  if (!family) {
    std::string known;
    for (const ModelFamily& f : AllFamilies()) known += (known.empty() ? "" : ", ") + f.name;
    return InvalidArgument(options.info.dir + "/model.json: unknown model family '" + name + "' (known: " + known +
                           ")");
  }
  if (!family->factory) {
    return FailedPrecondition("model family '" + name + "' is not implemented in this build");
  }
  if (family->output != options.info.output) {
    return InvalidArgument(options.info.dir + "/model.json: family '" + name + "' produces " +
                           (family->output == OutputKind::kImage ? "images" : "videos"));
  }
  return family->factory(options);
}

}  // namespace ditserve::models
