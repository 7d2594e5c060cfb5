#include "models/mochi/mochi_model.h"

#include <algorithm>

#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/noise.h"
#include "engine/runtime/schedulers/flow_match_euler.h"
#include "engine/runtime/torchscript.h"
#include "models/mochi/mochi_config.h"
#include "models/mochi/mochi_decode.h"
#include "models/mochi/mochi_denoiser.h"
#include "models/mochi/mochi_latents.h"
#include "models/mochi/mochi_text.h"

namespace ditserve::models::mochi {
namespace {

// MochiPipeline's schedule: linear_quadratic_schedule(steps, threshold_noise=0.025).
constexpr double kThresholdNoise = 0.025;

class MochiModel;

class MochiRequest final : public runtime::FamilyRequest {
 public:
  MochiRequest(MochiModel& model, const GenerateParams& params, const runtime::CfgPlan& plan)
      : model_(model), params_(params), plan_(plan) {}

  void EncodeText() override;
  StatusOr<runtime::Denoising> PrepareDenoising() override;
  at::Tensor Decode(const at::Tensor& latents, runtime::Communicator* split) override;
  void Record(std::map<std::string, runtime::HostTensor>& out) const override;

 private:
  MochiModel& model_;
  const GenerateParams params_;
  const runtime::CfgPlan plan_;
  std::vector<PromptEmbeds> prompts_;  // per plan branch
};

class MochiModel final : public runtime::FamilyModel {
 public:
  MochiConfig config;
  at::Device device{at::kCPU};
  runtime::DeviceMesh* mesh = nullptr;
  std::unique_ptr<MochiTextEncoder> text;
  torch::jit::Module transformer, vae;

  bool SplitsDecode() const override { return config.vae_parallel_rows; }

  // The largest stage's activations, estimated (bytes of the model dtype): the VAE decode holds
  // kDecodeFullResTensors full-resolution 128-channel tensors of one chunk's frames (divided over the ranks that
  // split it); the transformer a few token x 8192-wide SwiGLU rows per CFG branch.
  uint64_t RequestDeviceBytes(const GenerateParams& p) const override {
    if (device.is_cpu()) return 0;
    const LatentGrid g = LatentGrid::For(p.num_frames, p.height, p.width, config.vae_scale_factor,
                                         config.vae_temporal_scale_factor);
    const double elt = config.dtype == at::kFloat ? 4.0 : 2.0;
    const double frames =
        static_cast<double>(std::min(g.frames, kLatentFramesPerChunk) * config.vae_temporal_scale_factor);
    const int ranks = mesh != nullptr && SplitsDecode() ? mesh->world_size() : 1;
    const double vae = kDecodeFullResTensors * 128.0 * frames * static_cast<double>(p.height) * static_cast<double>(p.width) * elt / ranks;
    const double tokens = static_cast<double>(g.tokens(config.patch_size) + config.max_sequence_length);
    const double transformer = 2.0 * 3.0 * tokens * (16.0 / 3.0) * static_cast<double>(config.hidden_size()) * elt;
    return static_cast<uint64_t>(std::max(vae, transformer));
  }

  StatusOr<std::unique_ptr<runtime::FamilyRequest>> Begin(const GenerateParams& params,
                                                          const runtime::CfgPlan& plan) override {
    return std::unique_ptr<runtime::FamilyRequest>(new MochiRequest(*this, params, plan));
  }
};

void MochiRequest::EncodeText() {
  for (runtime::Branch b : plan_.branches()) {
    prompts_.push_back(model_.text->Encode(b == runtime::Branch::kPositive ? params_.prompt : params_.negative_prompt));
  }
}

StatusOr<runtime::Denoising> MochiRequest::PrepareDenoising() {
  const MochiConfig& c = model_.config;
  const at::Device& device = model_.device;
  runtime::Denoising d;
  const LatentGrid grid =
      LatentGrid::For(params_.num_frames, params_.height, params_.width, c.vae_scale_factor, c.vae_temporal_scale_factor);
  if (grid.height % c.patch_size != 0 || grid.width % c.patch_size != 0) {
    return InvalidArgument("width, height: must be multiples of " + std::to_string(c.vae_scale_factor * c.patch_size));
  }
  // randn_tensor in float32 on a CPU generator, then cast (every rank draws the same noise).
  d.latents = runtime::InitialNoise(params_.seed, {1, c.in_channels, grid.frames, grid.height, grid.width}, at::kFloat,
                                    at::kCPU)
                  .to(c.dtype)
                  .to(device);

  ASSIGN_OR_RETURN(d.scheduler, runtime::MakeScheduler(c.scheduler, c.dir + "/model.json: scheduler"));
  ASSIGN_OR_RETURN(std::vector<double> sigmas,
                   runtime::FlowMatchEulerScheduler::LinearQuadraticSigmas(params_.steps, kThresholdNoise));
  RETURN_IF_ERROR(d.scheduler->SetTimesteps({.steps = params_.steps, .sigmas = std::move(sigmas)}));
  // What MochiPipeline passes the transformer: t.expand(B).to(latents.dtype).
  const at::Tensor timesteps = at::tensor(d.scheduler->timesteps(), at::kFloat).to(device).to(c.dtype);

  const int64_t video_len = grid.tokens(c.patch_size);
  const int64_t text_len = c.max_sequence_length;
  runtime::SequenceLayout layout(model_.mesh != nullptr ? model_.mesh->sequence() : nullptr, {video_len, text_len});
  const auto rope = model_.transformer.get_method("rope")({grid.frames, grid.height / c.patch_size,
                                                          grid.width / c.patch_size}).toTupleRef().elements();
  const at::Tensor cos = layout.Shard(MochiDenoiser::kVideo, rope[0].toTensor(), 0);
  const at::Tensor sin = layout.Shard(MochiDenoiser::kVideo, rope[1].toTensor(), 0);

  std::vector<MochiDenoiser::Branch> branches;
  bool any_mask = false;
  for (const PromptEmbeds& p : prompts_) {
    MochiDenoiser::Branch b;
    const at::Tensor txt = model_.transformer.get_method("embed_text")({p.hidden}).toTensor();
    b.txt = layout.Shard(MochiDenoiser::kText, txt, 1);
    b.cond = model_.transformer.get_method("conditioning")({timesteps, p.hidden, p.mask}).toTensor();
    b.mask = layout.KeyMask({at::Tensor(), p.mask}, 1, device);
    any_mask = any_mask || b.mask.defined();
    branches.push_back(std::move(b));
  }
  // Batched branches need the mask on all or none of them.
  for (MochiDenoiser::Branch& b : branches) {
    if (any_mask && !b.mask.defined()) b.mask = at::ones({1, layout.local_length()}, at::TensorOptions().dtype(at::kBool).device(device));
  }
  d.denoiser = std::make_unique<MochiDenoiser>(model_.transformer, c.num_layers, c.patch_size, grid, layout, cos, sin,
                                               std::move(branches));
  const double scale = params_.guidance_scale;
  d.guidance.scale = [scale](int64_t) { return scale; };
  d.guidance.float32 = true;  // "Mochi CFG + Sampling runs in FP32"
  d.batch_branches = true;    // MochiPipeline runs both branches as one batch
  return d;
}

at::Tensor MochiRequest::Decode(const at::Tensor& latents, runtime::Communicator* split) {
  return DecodeVideo(model_.vae, model_.config, latents, split);
}

void MochiRequest::Record(std::map<std::string, runtime::HostTensor>& out) const {
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const std::string prefix = plan_.branches()[i] == runtime::Branch::kPositive ? "prompt" : "negative_prompt";
    out[prefix + "_embeds"] = runtime::HostTensor::From(prompts_[i].hidden);
    out[prefix + "_mask"] = runtime::HostTensor::From(prompts_[i].mask);
  }
}

}  // namespace

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadMochi(const runtime::PipelineOptions& options) {
  auto m = std::make_unique<MochiModel>();
  ASSIGN_OR_RETURN(m->config, MochiConfig::Load(options.info.dir));
  m->device = at::Device(options.device);
  m->mesh = options.mesh.get();
  const MochiConfig& c = m->config;
  RETURN_IF_ERROR(runtime::CheckUlyssesDividesHeads(m->mesh, c.num_attention_heads));
  ASSIGN_OR_RETURN(m->text, MochiTextEncoder::Load(c, m->device));
  ASSIGN_OR_RETURN(m->transformer, runtime::LoadTorchScript(c.Path(c.transformer_file), m->device));
  ASSIGN_OR_RETURN(m->vae, runtime::LoadTorchScript(c.Path(c.vae_file), m->device));
  RETURN_IF_ERROR(runtime::RequireMethods(m->transformer, c.Path(c.transformer_file),
                                          {"rope", "conditioning", "embed_text", "embed_video", "blocks", "head"}));
  return std::unique_ptr<runtime::FamilyModel>(std::move(m));
}

}  // namespace ditserve::models::mochi
