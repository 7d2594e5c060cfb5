#include "models/cogvideox/cogvideox_model.h"

#include <algorithm>
#include <cmath>

#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/noise.h"
#include "engine/runtime/torchscript.h"
#include "models/cogvideox/cogvideox_config.h"
#include "models/cogvideox/cogvideox_decode.h"
#include "models/cogvideox/cogvideox_denoiser.h"
#include "models/cogvideox/cogvideox_latents.h"
#include "models/cogvideox/cogvideox_text.h"

namespace ditserve::models::cogvideox {

double DynamicGuidanceScale(double scale, double t, int64_t num_inference_steps) {
  const double n = static_cast<double>(num_inference_steps);
  return 1 + scale * ((1 - std::cos(M_PI * std::pow((n - t) / n, 5.0))) / 2);
}

namespace {

class CogVideoXModel;

class CogVideoXRequest final : public runtime::FamilyRequest {
 public:
  CogVideoXRequest(CogVideoXModel& model, const GenerateParams& params, const runtime::CfgPlan& plan)
      : model_(model), params_(params), plan_(plan) {}

  void EncodeText() override;
  StatusOr<runtime::Denoising> PrepareDenoising() override;
  at::Tensor Decode(const at::Tensor& latents, runtime::Communicator* split) override;
  void Record(std::map<std::string, runtime::HostTensor>& out) const override;

 private:
  CogVideoXModel& model_;
  const GenerateParams params_;
  const runtime::CfgPlan plan_;
  std::vector<at::Tensor> prompts_;  // T5 hidden states per plan branch
  LatentGrid grid_;
};

class CogVideoXModel final : public runtime::FamilyModel {
 public:
  CogVideoXConfig config;
  at::Device device{at::kCPU};
  runtime::DeviceMesh* mesh = nullptr;
  std::unique_ptr<CogVideoXTextEncoder> text;
  torch::jit::Module transformer, vae;

  bool SplitsDecode() const override { return config.vae_parallel_rows; }
  uint64_t RequestDeviceBytes(const GenerateParams& p) const override;
  StatusOr<std::unique_ptr<runtime::FamilyRequest>> Begin(const GenerateParams& params,
                                                          const runtime::CfgPlan& plan) override {
    return std::unique_ptr<runtime::FamilyRequest>(new CogVideoXRequest(*this, params, plan));
  }
};

uint64_t CogVideoXModel::RequestDeviceBytes(const GenerateParams& p) const {
  if (device.is_cpu()) return 0;
  const CogVideoXConfig& c = config;
  const LatentGrid g = GridOf(c, p.num_frames, p.height, p.width);
  const uint64_t elem = c.dtype == at::kFloat ? 4 : 2;
  const int64_t ranks = mesh != nullptr ? mesh->sequence_size() : 1;
  // Transformer: both CFG branches batched, ~16 activations of [S, D] live in a block (q/k/v, the 4x MLP).
  const uint64_t tokens = (g.tokens(c) + ranks - 1) / ranks + c.max_sequence_length;
  const uint64_t denoise = 2 * tokens * uint64_t(c.num_attention_heads * c.attention_head_dim) * elem * 16;
  // VAE decode: one latent frame batch, 8 frames x 128 channels, 16 live activations (measured 14.9: 10.0 GiB
  // allocated beyond the weights at 480x720 on an H100), of this rank's rows (an
  // export with "vae.parallel": "rows" splits the latent rows over every rank of the group, unevenly rounded up;
  // RunSplitByRows decodes whole when there are fewer rows than ranks), plus the gathered video (gather + cat).
  const int64_t world = mesh != nullptr && SplitsDecode() ? mesh->world_size() : 1;
  const int64_t parts = g.height >= world ? world : 1;
  const uint64_t rows = uint64_t((g.height + parts - 1) / parts * c.vae_scale_factor);
  const uint64_t video = 2ull * uint64_t(p.num_frames) * 3 * p.height * p.width * elem;
  const uint64_t decode = 16ull * rows * p.width * 128 * elem * 8 + video;
  return std::max(denoise, decode);
}

void CogVideoXRequest::EncodeText() {
  for (runtime::Branch b : plan_.branches()) {
    prompts_.push_back(model_.text->Encode(b == runtime::Branch::kPositive ? params_.prompt : params_.negative_prompt));
  }
}

StatusOr<runtime::Denoising> CogVideoXRequest::PrepareDenoising() {
  const CogVideoXConfig& c = model_.config;
  const at::Device& device = model_.device;
  runtime::Denoising d;
  grid_ = GridOf(c, params_.num_frames, params_.height, params_.width);
  // prepare_latents: randn [B, F, C, h, w] in the model dtype from a CPU generator (init_noise_sigma 1).
  d.latents = runtime::InitialNoise(params_.seed, {1, grid_.frames, c.in_channels, grid_.height, grid_.width}, c.dtype,
                                    device);

  ASSIGN_OR_RETURN(d.scheduler, runtime::MakeScheduler(c.scheduler, c.dir + "/model.json: scheduler"));
  RETURN_IF_ERROR(d.scheduler->SetTimesteps({.steps = params_.steps, .seed = params_.seed}));
  const std::vector<float>& ts = d.scheduler->timesteps();
  const int64_t n = d.scheduler->num_inference_steps();

  // Positions: 5b / 1.5 rotate q/k of the video tokens; 2b adds fixed sin-cos positions to the embedding.
  const int64_t text_len = prompts_[0].size(1);
  runtime::SequenceLayout layout(model_.mesh != nullptr ? model_.mesh->sequence() : nullptr,
                                 {text_len, grid_.tokens(c)});
  at::Tensor cos, sin, pos;
  const int64_t f = grid_.frames, h = grid_.height, w = grid_.width;
  if (c.rotary) {
    const c10::IValue rotary = model_.transformer.get_method("rotary")({f, h, w});
    const auto& e = rotary.toTupleRef().elements();
    cos = layout.Shard(CogVideoXDenoiser::kVideo, e[0].toTensor(), 0).to(device);
    sin = layout.Shard(CogVideoXDenoiser::kVideo, e[1].toTensor(), 0).to(device);
  } else {
    pos = model_.transformer.get_method("sincos_positions")({f, h, w}).toTensor().to(device);
  }

  // The transformer gets t.expand(B), int64; its time embedding is computed for every step up front.
  const at::Tensor steps = at::tensor(std::vector<int64_t>(ts.begin(), ts.end()), at::kLong).to(device);
  const at::Tensor emb = model_.transformer.get_method("time_embedding_of")({steps}).toTensor().unsqueeze(1);
  std::vector<CogVideoXDenoiser::Branch> branches;
  for (const at::Tensor& p : prompts_) {
    const at::Tensor text = model_.transformer.get_method("embed_text")({p}).toTensor();
    branches.push_back({layout.Shard(CogVideoXDenoiser::kText, text, 1), emb});
  }
  const at::Tensor mask = layout.KeyMask({}, 1, device);
  d.denoiser = std::make_unique<CogVideoXDenoiser>(model_.transformer, c.num_layers, layout, cos, sin, pos, mask,
                                                   std::vector<int64_t>{f, h, w}, std::move(branches));
  const double scale = params_.guidance_scale;
  if (params_.use_dynamic_cfg) {
    std::vector<double> scales;
    for (float t : ts) scales.push_back(DynamicGuidanceScale(scale, t, n));
    d.guidance.scale = [scales](int64_t i) { return scales.at(i); };
  } else {
    d.guidance.scale = [scale](int64_t) { return scale; };
  }
  d.guidance.float32 = true;  // noise_pred.float(): guidance and the scheduler step in float32
  d.batch_branches = true;    // torch.cat([latents] * 2)
  return d;
}

at::Tensor CogVideoXRequest::Decode(const at::Tensor& latents, runtime::Communicator* split) {
  return DecodeLatents(model_.vae, latents, grid_.pad_frames, model_.config.scaling_factor, split);
}

void CogVideoXRequest::Record(std::map<std::string, runtime::HostTensor>& out) const {
  if (!plan_.runs(runtime::Branch::kPositive)) return;
  out["prompt_embeds"] = runtime::HostTensor::From(prompts_[0]);
}

}  // namespace

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadCogVideoX(const runtime::PipelineOptions& options) {
  auto m = std::make_unique<CogVideoXModel>();
  ASSIGN_OR_RETURN(m->config, CogVideoXConfig::Load(options.info.dir));
  m->device = at::Device(options.device);
  m->mesh = options.mesh.get();
  const CogVideoXConfig& c = m->config;
  RETURN_IF_ERROR(runtime::CheckUlyssesDividesHeads(m->mesh, c.num_attention_heads));
  ASSIGN_OR_RETURN(m->text, CogVideoXTextEncoder::Load(c, m->device));
  ASSIGN_OR_RETURN(m->transformer, runtime::LoadTorchScript(c.Path(c.transformer_file), m->device));
  ASSIGN_OR_RETURN(m->vae, runtime::LoadTorchScript(c.Path(c.vae_file), m->device));
  RETURN_IF_ERROR(runtime::RequireMethods(m->transformer, c.Path(c.transformer_file),
                                          {"time_embedding_of", "embed_text", "embed_video", "blocks", "head",
                                           "unpatchify", "rotary", "sincos_positions"}));
  RETURN_IF_ERROR(runtime::RequireMethods(m->vae, c.Path(c.vae_file),
                                          {"first_single", "first_even", "first_odd", "next"}));
  return std::unique_ptr<runtime::FamilyModel>(std::move(m));
}

}  // namespace ditserve::models::cogvideox
