#include "models/hunyuan_video/hunyuan_video_model.h"

#include <algorithm>

#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/cp/sequence_layout.h"
#include "engine/runtime/noise.h"
#include "engine/runtime/rope.h"
#include "engine/runtime/schedulers/flow_match_euler.h"
#include "engine/runtime/torchscript.h"
#include "models/hunyuan_video/hunyuan_video_config.h"
#include "models/hunyuan_video/hunyuan_video_decode.h"
#include "models/hunyuan_video/hunyuan_video_denoiser.h"
#include "models/hunyuan_video/hunyuan_video_text.h"

namespace ditserve::models::hunyuan_video {
namespace {

class HunyuanVideoModel;

class HunyuanVideoRequest final : public runtime::FamilyRequest {
 public:
  HunyuanVideoRequest(HunyuanVideoModel& model, const GenerateParams& params, const runtime::CfgPlan& plan)
      : model_(model), params_(params), plan_(plan) {}

  void EncodeText() override;
  StatusOr<runtime::Denoising> PrepareDenoising() override;
  at::Tensor Decode(const at::Tensor& latents, runtime::Communicator* split) override;
  void Record(std::map<std::string, runtime::HostTensor>& out) const override;

 private:
  HunyuanVideoModel& model_;
  const GenerateParams params_;
  const runtime::CfgPlan plan_;
  std::vector<PromptEmbeds> prompts_;  // per plan branch
};

class HunyuanVideoModel final : public runtime::FamilyModel {
 public:
  HunyuanVideoConfig config;
  at::Device device{at::kCPU};
  runtime::DeviceMesh* mesh = nullptr;
  std::unique_ptr<HunyuanVideoTextEncoder> text;
  torch::jit::Module transformer, vae;

  bool SplitsDecode() const override { return config.vae_parallel_rows; }
  uint64_t RequestDeviceBytes(const GenerateParams& params) const override;
  StatusOr<std::unique_ptr<runtime::FamilyRequest>> Begin(const GenerateParams& params,
                                                          const runtime::CfgPlan& plan) override {
    // The request validation checks model.json's limits; these are what the model itself needs.
    const int64_t m = config.vae_scale_factor * config.patch_size;
    if (params.width % m != 0 || params.height % m != 0) {
      return InvalidArgument(std::string(params.width % m != 0 ? "width" : "height") + ": must be a multiple of " +
                             std::to_string(m) + " (VAE x" + std::to_string(config.vae_scale_factor) +
                             ", 2x2 patches)");
    }
    if (params.num_frames < 1 || (params.num_frames - 1) % config.vae_temporal_scale_factor != 0) {
      return InvalidArgument("num_frames: must be " + std::to_string(config.vae_temporal_scale_factor) +
                             "k+1 (the causal VAE's frame grouping), got " + std::to_string(params.num_frames));
    }
    return std::unique_ptr<runtime::FamilyRequest>(new HunyuanVideoRequest(*this, params, plan));
  }
};

uint64_t HunyuanVideoModel::RequestDeviceBytes(const GenerateParams& p) const {
  const HunyuanVideoConfig& c = config;
  const uint64_t bytes = c.dtype == at::kFloat ? 4 : 2;
  const int64_t seq = mesh != nullptr ? mesh->sequence_size() : 1;
  const int64_t frames = c.LatentFrames(p.num_frames), rows = p.height / c.vae_scale_factor,
                cols = p.width / c.vae_scale_factor;
  const int64_t tokens = frames * (rows / c.patch_size) * (cols / c.patch_size) + c.max_sequence_length;
  const uint64_t dim = static_cast<uint64_t>(c.num_attention_heads * c.attention_head_dim);
  // A single-stream block holds its input, the q/k/v and MLP projections (7·D), attention's output and the
  // output projection (2·D); 14·D per token of this rank's shard leaves room for the allocator's slack.
  const uint64_t transformer = static_cast<uint64_t>((tokens + seq - 1) / seq) * dim * bytes * 14;
  // The VAE's largest activations: a tile of the first up block's 128-channel features at full resolution
  // (a few live at once; split by rows, this rank's share of the tile's rows), and the decoded video itself
  // (gathered on every rank).
  const VaeTiling& t = c.tiling;
  const int64_t tile_frames = t.framewise ? std::min<int64_t>(p.num_frames, t.min_frames + 1) : p.num_frames;
  const int64_t tile_h = t.spatial ? std::min<int64_t>(p.height, t.min_height) : p.height;
  const int64_t tile_w = t.spatial ? std::min<int64_t>(p.width, t.min_width) : p.width;
  const int64_t ranks = mesh != nullptr && SplitsDecode() ? mesh->world_size() : 1;
  const int64_t tile_rows = tile_h / c.vae_scale_factor;  // latent rows: RunSplitByRows gives the first ranks one more
  const int64_t rank_h = tile_rows >= ranks ? (tile_rows + ranks - 1) / ranks * c.vae_scale_factor : tile_h;
  const uint64_t vae = static_cast<uint64_t>(tile_frames * rank_h * tile_w) * 128 * bytes * 6 +
                       static_cast<uint64_t>(tile_frames * tile_h * tile_w) * 3 * bytes +
                       static_cast<uint64_t>(p.num_frames * p.height * p.width) * 3 * (bytes + 4);
  return std::max(transformer, vae);
}

void HunyuanVideoRequest::EncodeText() {
  for (runtime::Branch b : plan_.branches()) {
    StatusOr<PromptEmbeds> e =
        model_.text->Encode(b == runtime::Branch::kPositive ? params_.prompt : params_.negative_prompt);
    TORCH_CHECK(e.ok(), e.status().ToString());
    prompts_.push_back(std::move(e).value());
  }
}

StatusOr<runtime::Denoising> HunyuanVideoRequest::PrepareDenoising() {
  const HunyuanVideoConfig& c = model_.config;
  const at::Device& device = model_.device;
  runtime::Denoising d;
  // prepare_latents: float32 noise from the CPU generator (every rank draws the same).
  HunyuanVideoDenoiser::Grid grid;
  grid.frames = c.LatentFrames(params_.num_frames);
  grid.rows = params_.height / c.vae_scale_factor / c.patch_size;
  grid.cols = params_.width / c.vae_scale_factor / c.patch_size;
  grid.patch = c.patch_size;
  grid.channels = c.in_channels;
  d.latents = runtime::InitialNoise(
      params_.seed, {1, c.in_channels, grid.frames, grid.rows * c.patch_size, grid.cols * c.patch_size}, at::kFloat,
      device);

  // HunyuanVideoRotaryPosEmbed: (frame, row, column) positions, float32 frequencies; the text rows get the
  // identity rotation (the blocks rotate every token; diffusers rotates the video tokens only).
  const int64_t video_len = grid.frames * grid.rows * grid.cols;
  const int64_t text_len = prompts_[0].hidden.size(1);
  const at::Tensor f = at::arange(grid.frames, at::kFloat).view({-1, 1, 1}).expand({grid.frames, grid.rows, grid.cols});
  const at::Tensor r = at::arange(grid.rows, at::kFloat).view({1, -1, 1}).expand({grid.frames, grid.rows, grid.cols});
  const at::Tensor w = at::arange(grid.cols, at::kFloat).view({1, 1, -1}).expand({grid.frames, grid.rows, grid.cols});
  const at::Tensor ids = at::stack({f.reshape(-1), r.reshape(-1), w.reshape(-1)}, 1);
  const auto [video_cos, video_sin] = runtime::RotaryEmbedding(ids, c.rope_axes_dim, c.rope_theta, at::kFloat);
  const at::Tensor cos = at::cat({at::ones({text_len, video_cos.size(1)}, at::kFloat), video_cos}, 0);
  const at::Tensor sin = at::cat({at::zeros({text_len, video_sin.size(1)}, at::kFloat), video_sin}, 0);
  runtime::SequenceLayout layout(model_.mesh != nullptr ? model_.mesh->sequence() : nullptr, {text_len, video_len});

  // The schedule: custom sigmas linspace(1, 0, n + 1)[:-1], the checkpoint's static shift.
  ASSIGN_OR_RETURN(d.scheduler, runtime::MakeScheduler(c.scheduler, c.dir + "/model.json: scheduler"));
  RETURN_IF_ERROR(d.scheduler->SetTimesteps(
      {.steps = params_.steps, .sigmas = runtime::FlowMatchEulerScheduler::LinearSigmas(params_.steps)}));
  const int64_t n = d.scheduler->num_inference_steps();
  // t.expand(B).to(latents.dtype): float32 at the first step, then the model dtype (the scheduler returns the
  // latents in the transformer output's dtype).
  at::Tensor timesteps = at::tensor(d.scheduler->timesteps(), at::kFloat);
  if (n > 1) timesteps.slice(0, 1).copy_(timesteps.slice(0, 1).to(c.dtype).to(at::kFloat));
  timesteps = timesteps.to(device).unsqueeze(1);
  // torch.tensor([guidance_scale], dtype=transformer_dtype) * 1000.0, in that dtype.
  const at::Tensor guidance =
      at::full({1}, params_.guidance_scale, at::TensorOptions().dtype(c.dtype).device(device)) * 1000.0;

  std::vector<HunyuanVideoDenoiser::Branch> branches;
  for (const PromptEmbeds& p : prompts_) {
    HunyuanVideoDenoiser::Branch b;
    const at::Tensor txt = model_.transformer.get_method("embed_text")({p.hidden, p.mask, timesteps}).toTensor();
    b.txt = layout.Shard(HunyuanVideoDenoiser::kText, txt, 2);
    b.cond = model_.transformer.get_method("conditioning")({p.pooled, timesteps, guidance}).toTensor();
    b.mask = layout.KeyMask({p.mask.to(at::kBool)}, 1, device);
    if (!b.mask.defined()) b.mask = at::ones({1, layout.local_length()}, at::TensorOptions().dtype(at::kBool).device(device));
    branches.push_back(std::move(b));
  }
  d.denoiser = std::make_unique<HunyuanVideoDenoiser>(model_.transformer, c.num_layers, c.num_single_layers, layout,
                                                      grid, layout.ShardRows(cos).to(device),
                                                      layout.ShardRows(sin).to(device), std::move(branches));
  const double scale = params_.true_cfg_scale;
  d.guidance.scale = [scale](int64_t) { return scale; };
  return d;
}

at::Tensor HunyuanVideoRequest::Decode(const at::Tensor& latents, runtime::Communicator* split) {
  return DecodeVideo(model_.vae, model_.config, latents, split);
}

void HunyuanVideoRequest::Record(std::map<std::string, runtime::HostTensor>& out) const {
  if (!plan_.runs(runtime::Branch::kPositive)) return;
  out["prompt_embeds"] = runtime::HostTensor::From(prompts_[0].hidden);
  out["prompt_attention_mask"] = runtime::HostTensor::From(prompts_[0].mask);
  out["pooled_embeds"] = runtime::HostTensor::From(prompts_[0].pooled);
}

}  // namespace

StatusOr<std::unique_ptr<runtime::FamilyModel>> LoadHunyuanVideo(const runtime::PipelineOptions& options) {
  auto m = std::make_unique<HunyuanVideoModel>();
  ASSIGN_OR_RETURN(m->config, HunyuanVideoConfig::Load(options.info.dir));
  m->device = at::Device(options.device);
  m->mesh = options.mesh.get();
  const HunyuanVideoConfig& c = m->config;
  RETURN_IF_ERROR(runtime::CheckUlyssesDividesHeads(m->mesh, c.num_attention_heads));
  ASSIGN_OR_RETURN(m->text, HunyuanVideoTextEncoder::Load(c, m->device));
  ASSIGN_OR_RETURN(m->transformer, runtime::LoadTorchScript(c.Path(c.transformer_file), m->device));
  ASSIGN_OR_RETURN(m->vae, runtime::LoadTorchScript(c.Path(c.vae_file), m->device));
  RETURN_IF_ERROR(runtime::RequireMethods(
      m->transformer, c.Path(c.transformer_file),
      {"conditioning", "embed_text", "embed_image", "double_blocks", "single_blocks", "head"}));
  return std::unique_ptr<runtime::FamilyModel>(std::move(m));
}

}  // namespace ditserve::models::hunyuan_video
