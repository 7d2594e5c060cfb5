#include "models/flux/flux_model.h"

#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/noise.h"
#include "engine/runtime/rope.h"
#include "engine/runtime/schedulers/flow_match_euler.h"
#include "engine/runtime/torchscript.h"
#include "models/flux/flux_config.h"
#include "models/flux/flux_decode.h"
#include "models/flux/flux_denoiser.h"
#include "models/flux/flux_latents.h"
#include "models/flux/flux_text.h"

namespace ditserve::models::flux {
namespace {

class FluxModel;

class FluxRequest final : public runtime::FamilyRequest {
 public:
  FluxRequest(FluxModel& model, const GenerateParams& params, const runtime::CfgPlan& plan)
      : model_(model), params_(params), plan_(plan) {}

  void EncodeText() override;
  StatusOr<runtime::Denoising> PrepareDenoising() override;
  at::Tensor Decode(const at::Tensor& latents, runtime::Communicator* split) override;
  void Record(std::map<std::string, runtime::HostTensor>& out) const override;

 private:
  FluxModel& model_;
  const GenerateParams params_;
  const runtime::CfgPlan plan_;
  std::vector<PromptEmbeds> prompts_;  // per plan branch
  int64_t lh_ = 0, lw_ = 0;            // latent grid
};

class FluxModel final : public runtime::FamilyModel {
 public:
  FluxConfig config;
  at::Device device{at::kCPU};
  runtime::DeviceMesh* mesh = nullptr;
  std::unique_ptr<FluxTextEncoder> text;
  torch::jit::Module transformer, vae;

  bool SplitsDecode() const override { return config.vae_parallel_rows; }
  StatusOr<std::unique_ptr<runtime::FamilyRequest>> Begin(const GenerateParams& params,
                                                          const runtime::CfgPlan& plan) override {
    return std::unique_ptr<runtime::FamilyRequest>(new FluxRequest(*this, params, plan));
  }
};

void FluxRequest::EncodeText() {
  for (runtime::Branch b : plan_.branches()) {
    prompts_.push_back(model_.text->Encode(b == runtime::Branch::kPositive ? params_.prompt : params_.negative_prompt));
  }
}

StatusOr<runtime::Denoising> FluxRequest::PrepareDenoising() {
  const FluxConfig& c = model_.config;
  const at::Device& device = model_.device;
  runtime::Denoising d;
  // Latents, ids and rotary embedding. Every rank draws the same noise (CPU generator).
  lh_ = LatentSize(params_.height, c.vae_scale_factor);
  lw_ = LatentSize(params_.width, c.vae_scale_factor);
  d.latents = PackLatents(runtime::InitialNoise(params_.seed, {1, c.latent_channels(), lh_, lw_}, c.dtype, device));
  const int64_t text_len = prompts_[0].hidden.size(1);
  const int64_t img_len = d.latents.size(1);
  const at::Tensor ids = at::cat({at::zeros({text_len, 3}, at::kFloat), LatentImageIds(lh_, lw_)}, 0);
  const auto [cos, sin] = runtime::RotaryEmbedding(ids, c.axes_dims_rope, c.rope_theta);
  runtime::SequenceLayout layout(model_.mesh != nullptr ? model_.mesh->sequence() : nullptr, {text_len, img_len});

  // FluxPipeline's schedule: sigmas linspace(1, 1/n, n), mu from the image sequence length.
  ASSIGN_OR_RETURN(d.scheduler, runtime::MakeScheduler(c.scheduler, c.dir + "/model.json: scheduler"));
  const double mu = runtime::CalculateShift(img_len, c.base_image_seq_len, c.max_image_seq_len, c.base_shift,
                                            c.max_shift);
  RETURN_IF_ERROR(d.scheduler->SetTimesteps(
      {.steps = params_.steps, .mu = mu, .sigmas = runtime::FlowMatchEulerScheduler::FluxSigmas(params_.steps)}));
  const int64_t n = d.scheduler->num_inference_steps();
  // What FluxPipeline passes the transformer: the timestep rounded to the model dtype, then / 1000.
  const at::Tensor timesteps = (at::tensor(d.scheduler->timesteps(), at::kFloat).to(device).to(c.dtype) / 1000)
                                   .unsqueeze(1)
                                   .expand({n, 1});
  const at::Tensor guidance =
      at::full({1}, params_.guidance_scale, at::TensorOptions().dtype(at::kFloat).device(device));

  // Per branch and request: the embedded text shard and every step's modulation rows.
  std::vector<FluxDenoiser::Branch> branches;
  for (const PromptEmbeds& p : prompts_) {
    const at::Tensor txt = layout.Shard(FluxDenoiser::kText, p.hidden, 1);
    branches.push_back({model_.transformer.get_method("embed_text")({txt}).toTensor(),
                        model_.transformer.get_method("conditioning")({p.pooled, timesteps, guidance}).toTensor()});
  }
  const at::Tensor mask = layout.KeyMask({}, 1, device);
  d.denoiser = std::make_unique<FluxDenoiser>(model_.transformer, c.num_layers, c.num_single_layers, layout,
                                              layout.ShardRows(cos).to(device), layout.ShardRows(sin).to(device), mask,
                                              std::move(branches));
  const double scale = params_.true_cfg_scale;
  d.guidance.scale = [scale](int64_t) { return scale; };
  return d;
}

at::Tensor FluxRequest::Decode(const at::Tensor& latents, runtime::Communicator* split) {
  const FluxConfig& c = model_.config;
  return DecodeLatentsParallel(model_.vae, latents, lh_, lw_, c.scaling_factor, c.shift_factor, split);
}

void FluxRequest::Record(std::map<std::string, runtime::HostTensor>& out) const {
  if (!plan_.runs(runtime::Branch::kPositive)) return;
  out["pooled_embeds"] = runtime::HostTensor::From(prompts_[0].pooled);
  out["t5_embeds"] = runtime::HostTensor::From(prompts_[0].hidden);
}

}  // namespace

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadFlux(const runtime::PipelineOptions& options) {
  auto m = std::make_unique<FluxModel>();
  ASSIGN_OR_RETURN(m->config, FluxConfig::Load(options.info.dir));
  m->device = at::Device(options.device);
  m->mesh = options.mesh.get();
  const FluxConfig& c = m->config;
  RETURN_IF_ERROR(runtime::CheckUlyssesDividesHeads(m->mesh, c.num_attention_heads));
  ASSIGN_OR_RETURN(m->text, FluxTextEncoder::Load(c, m->device));
  ASSIGN_OR_RETURN(m->transformer, runtime::LoadTorchScript(c.Path(c.transformer_file), m->device));
  ASSIGN_OR_RETURN(m->vae, runtime::LoadTorchScript(c.Path(c.vae_file), m->device));
  RETURN_IF_ERROR(runtime::RequireMethods(
      m->transformer, c.Path(c.transformer_file),
      {"conditioning", "embed_text", "embed_image", "double_blocks", "single_blocks", "head"}));
  return std::unique_ptr<runtime::FamilyModel>(std::move(m));
}

}  // namespace ditserve::models::flux
