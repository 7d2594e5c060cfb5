#include "models/flux/flux_pipeline.h"

#include <chrono>
#include <cstdio>
#include <string>

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/script.h>

#include "engine/io/png.h"
#include "engine/src/torch/cp/mesh.h"
#include "engine/src/torch/cp/sequence_shard.h"
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
#include "engine/src/torch/cuda_graph_cache.h"
#endif
#include "engine/src/torch/device_memory.h"
#include "engine/src/torch/first_block_cache.h"
#include "engine/src/torch/flow_match_euler.h"
#include "models/flux/flux_config.h"
#include "models/flux/flux_decode.h"
#include "models/flux/flux_latents.h"
#include "models/flux/flux_text.h"

namespace ditserve::models::flux {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for queued device work so stage timings mean something on CUDA.
void SyncDevice(const at::Device& device) {
  if (device.is_cpu()) return;
  c10::impl::getDeviceGuardImpl(device.type())->synchronizeDevice(device.index());
}

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Copies a tensor to the host as float32; appends its shape to *shape when given.
std::vector<float> ToHostFloats(const at::Tensor& t, std::vector<int64_t>* shape = nullptr) {
  const at::Tensor host = t.to(at::kCPU).to(at::kFloat).contiguous();
  if (shape != nullptr) shape->assign(host.sizes().begin(), host.sizes().end());
  return std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
}

std::string FormatFloat(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// How this rank's transformer inputs are cut from the full sequence [text tokens, image tokens]:
// text and image tokens are sharded separately (each padded to a multiple of the sequence ranks), so
// every rank holds [its text shard, its image shard], matching the rows of cos/sin and the mask.
struct SequenceLayout {
  torch_engine::Communicator* comm = nullptr;  // null: one sequence rank holds everything
  int index = 0;
  torch_engine::SequenceSplit txt, img;
  at::Tensor cos, sin;  // [S_local, head_dim]
  c10::IValue mask;     // None, or bool [1, S_local] when there is padding

  static SequenceLayout Make(torch_engine::DeviceMesh* mesh, int64_t text_len, int64_t img_len,
                             const at::Tensor& cos, const at::Tensor& sin, const at::Device& device) {
    SequenceLayout l;
    l.comm = mesh != nullptr ? mesh->sequence() : nullptr;
    if (l.comm == nullptr) {
      l.cos = cos.to(device);
      l.sin = sin.to(device);
      return l;
    }
    using torch_engine::TakeShard;
    l.index = mesh->sequence_index();
    l.txt = torch_engine::SplitSequence(text_len, l.comm->size());
    l.img = torch_engine::SplitSequence(img_len, l.comm->size());
    auto local = [&](const at::Tensor& t) {
      return at::cat({TakeShard(t.narrow(0, 0, text_len), 0, l.txt, l.index),
                      TakeShard(t.narrow(0, text_len, img_len), 0, l.img, l.index)})
          .to(device);
    };
    l.cos = local(cos);
    l.sin = local(sin);
    if (l.txt.has_padding() || l.img.has_padding()) {
      l.mask = at::cat({torch_engine::ShardValidMask(l.txt, l.index, device),
                        torch_engine::ShardValidMask(l.img, l.index, device)})
                   .unsqueeze(0);
    }
    return l;
  }
  at::Tensor Text(const at::Tensor& hidden) const {
    return comm ? torch_engine::TakeShard(hidden, 1, txt, index) : hidden;
  }
  at::Tensor Image(const at::Tensor& packed) const {
    return comm ? torch_engine::TakeShard(packed, 1, img, index) : packed;
  }
  at::Tensor GatherImage(const at::Tensor& local) const {
    return comm ? torch_engine::GatherShards(*comm, local, 1, img) : local;
  }
};

}  // namespace

struct FluxPipeline::Impl {
  PipelineOptions options;
  FluxConfig config;
  at::Device device{at::kCPU};
  std::unique_ptr<FluxTextEncoder> text;
  torch::jit::Module transformer, vae;
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
  std::unique_ptr<torch_engine::CudaGraphCache> graphs;  // CUDA pipelines with server.cuda_graphs
#endif

  // A transformer evaluation on this rank's shard, in phases so First Block Cache can decide between
  // them: Begin = image embedding + double blocks [0, first); Rest = the remaining blocks; Head = output
  // projection, then the image tokens gathered from the sequence ranks. `txt` is the embedded text shard
  // (embed_text, once per request) and `mod` this step's row of the request's conditioning (every block's
  // adaLN modulation, computed for all steps before the first).
  struct Pass {
    at::Tensor img_in, img, txt;
  };
  Pass Begin(const at::Tensor& latents, const at::Tensor& txt, const at::Tensor& mod, const SequenceLayout& layout,
             int64_t first) {
    const at::Tensor img = transformer.get_method("embed_image")({layout.Image(latents)}).toTensor();
    // FLUX attends to every (padded) T5 token, like diffusers; the mask only hides sequence padding.
    auto d = transformer.get_method("double_blocks")(
        {int64_t{0}, first, img, txt, mod, layout.cos, layout.sin, layout.mask});
    return {img, d.toTupleRef().elements()[0].toTensor(), d.toTupleRef().elements()[1].toTensor()};
  }
  // Runs double blocks [from, end) and all single blocks; returns the final (img, txt) streams.
  std::pair<at::Tensor, at::Tensor> Rest(const Pass& p, const at::Tensor& mod, const SequenceLayout& layout,
                                         int64_t from) {
    c10::IValue img = p.img, txt = p.txt;
    if (from < config.num_layers) {
      auto d = transformer.get_method("double_blocks")(
          {from, config.num_layers, img, txt, mod, layout.cos, layout.sin, layout.mask});
      img = d.toTupleRef().elements()[0];
      txt = d.toTupleRef().elements()[1];
    }
    auto s = transformer.get_method("single_blocks")(
        {int64_t{0}, config.num_single_layers, img, txt, mod, layout.cos, layout.sin, layout.mask});
    return {s.toTupleRef().elements()[0].toTensor(), s.toTupleRef().elements()[1].toTensor()};
  }
  at::Tensor Head(const at::Tensor& img, const at::Tensor& mod, const SequenceLayout& layout) {
    return layout.GatherImage(transformer.get_method("head")({img, mod}).toTensor());
  }
  // One full evaluation without the cache, run op by op.
  at::Tensor Eager(const at::Tensor& latents, const at::Tensor& txt, const at::Tensor& mod,
                   const SequenceLayout& layout) {
    Pass p = Begin(latents, txt, mod, layout, config.num_layers);
    return Head(Rest(p, mod, layout, config.num_layers).first, mod, layout);
  }
  // One full evaluation without the cache, replayed from a CUDA graph where available (both CFG
  // branches share the graph: inputs are copied in, the output copied out). On a multi-rank group the
  // graph holds the step's NCCL collectives too: every rank captures the same sequence at the same call,
  // so replays pair up like eager calls. Removing the host from the step matters most there, where each
  // rank's device work per step halves but TorchScript's per-op host cost does not.
  at::Tensor Full(const at::Tensor& latents, const at::Tensor& txt, const at::Tensor& mod,
                  const SequenceLayout& layout) {
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
    if (graphs != nullptr) {
      std::vector<at::Tensor> in{latents, txt, mod, layout.cos, layout.sin};
      if (layout.mask.isTensor()) in.push_back(layout.mask.toTensor());
      // The shard splits are baked into the graph: the full text length keys it (the image length is
      // latents' shape, part of the signature).
      const std::string key = layout.comm == nullptr ? "flux" : "flux/txt" + std::to_string(layout.txt.length);
      try {
        return graphs->Run(key, in, [this, &layout](const std::vector<at::Tensor>& in) {
          SequenceLayout l = layout;  // mesh placement; the tensors become the graph's static inputs
          l.cos = in[3];
          l.sin = in[4];
          if (in.size() > 5) l.mask = in[5];
          return Eager(in[0], in[1], in[2], l);
        });
      } catch (const c10::Error& e) {
        // A model the graph cannot capture still serves, eagerly (on a group, the eager path issues
        // the same collectives in the same order as a replay). stderr: spdlog's fmt clashes with the
        // copy of fmt inside torch's headers.
        std::fprintf(stderr, "flux: CUDA graph capture failed, running eagerly from now on: %s\n",
                     e.what_without_backtrace());
        graphs.reset();
      }
    }
#endif
    return Eager(latents, txt, mod, layout);
  }

  StatusOr<FluxRawOutput> Run(const GenerateParams& params, JobControl& control, const FluxRawOptions& raw_options);
};

FluxPipeline::FluxPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FluxPipeline::~FluxPipeline() = default;

StatusOr<std::unique_ptr<FluxPipeline>> FluxPipeline::Load(const PipelineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ASSIGN_OR_RETURN(impl->config, FluxConfig::Load(options.info.dir));
  try {
    impl->device = at::Device(options.device);
  } catch (const c10::Error& e) {
    return InvalidArgument("bad device \"" + options.device + "\": " + e.what_without_backtrace());
  }
  const FluxConfig& c = impl->config;
  ASSIGN_OR_RETURN(impl->text, FluxTextEncoder::Load(c, impl->device));
  ASSIGN_OR_RETURN(impl->transformer, LoadTorchScript(c.Path(c.transformer_file), impl->device));
  ASSIGN_OR_RETURN(impl->vae, LoadTorchScript(c.Path(c.vae_file), impl->device));
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
  if (options.cuda_graphs && impl->device.is_cuda()) {
    impl->graphs = std::make_unique<torch_engine::CudaGraphCache>();
  }
#endif
  const int ulysses = options.mesh != nullptr ? options.mesh->ulysses_size() : 1;
  if (ulysses > 1 && c.num_attention_heads % ulysses != 0) {
    return InvalidArgument("ulysses=" + std::to_string(ulysses) + " must divide the transformer's " +
                           std::to_string(c.num_attention_heads) + " attention heads");
  }
  for (const char* method : {"conditioning", "embed_text", "embed_image", "double_blocks", "single_blocks", "head"}) {
    if (!impl->transformer.find_method(method)) {
      return InvalidArgument(c.Path(c.transformer_file) + " has no method '" + method + "' (re-export it)");
    }
  }
  return std::unique_ptr<FluxPipeline>(new FluxPipeline(std::move(impl)));
}

StatusOr<FluxRawOutput> FluxPipeline::Impl::Run(const GenerateParams& params, JobControl& control,
                                                const FluxRawOptions& raw_options) {
  const FluxConfig& c = config;
  if (params.steps < 1) return InvalidArgument("steps must be >= 1");
  if (params.width < c.vae_scale_factor * 2 || params.height < c.vae_scale_factor * 2) {
    return InvalidArgument("width and height must be at least " + std::to_string(c.vae_scale_factor * 2));
  }
  FluxRawOutput out;
  const at::ScalarType dtype = c.dtype;

  torch_engine::DeviceMesh* mesh = options.mesh.get();
  const bool cfg_parallel = mesh != nullptr && mesh->cfg_size() > 1;
  const bool do_true_cfg = params.true_cfg_scale > 1.f && !params.negative_prompt.empty();
  if (cfg_parallel && !do_true_cfg) {
    return InvalidArgument("this group runs CFG-parallel (cfg=" + std::to_string(mesh->cfg_size()) +
                           "): requests need true_cfg_scale > 1 and a negative_prompt");
  }
  // The conditional branch runs on cfg rank 0 (and on every rank without CFG parallelism), the
  // unconditional one on cfg rank 1 (or after the conditional one on the same rank).
  const bool run_positive = !cfg_parallel || mesh->cfg_index() == 0;
  const bool run_negative = do_true_cfg && (!cfg_parallel || mesh->cfg_index() == 1);
  // Every rank must leave the loop at the same step, or the others would wait in a collective forever.
  auto cancelled = [&] { return mesh != nullptr ? mesh->AnyRank(control.Cancelled()) : control.Cancelled(); };

  // Each stage's time and this rank's peak device allocation in it.
  auto t0 = Clock::now();
  auto start_stage = [&] {
    torch_engine::ResetDevicePeak(device);
    t0 = Clock::now();
  };
  auto end_stage = [&](Stage stage) {
    out.timings.push_back({stage, Since(t0), torch_engine::DevicePeakBytes(device)});
  };

  // 1. Text (true CFG as diffusers: true_cfg_scale > 1 and a negative prompt).
  start_stage();
  PromptEmbeds prompt, negative;
  if (run_positive) prompt = text->Encode(params.prompt);
  if (run_negative) negative = text->Encode(params.negative_prompt);
  const PromptEmbeds& any_prompt = run_positive ? prompt : negative;
  SyncDevice(device);
  end_stage(Stage::kTextEncode);
  control.Progress(Stage::kTextEncode, 1, 1);
  if (raw_options.record_intermediates && run_positive) {
    out.pooled_embeds = ToHostFloats(prompt.pooled, &out.pooled_shape);
    out.t5_embeds = ToHostFloats(prompt.hidden, &out.t5_shape);
  }

  // 2. Latents, ids, rotary embedding, schedule. Every rank draws the same noise (CPU generator).
  start_stage();
  const int64_t lh = LatentSize(params.height, c.vae_scale_factor);
  const int64_t lw = LatentSize(params.width, c.vae_scale_factor);
  at::Tensor latents = PackLatents(InitialNoise(params.seed, c.latent_channels(), lh, lw, dtype, device));
  const int64_t text_len = any_prompt.hidden.size(1);
  const at::Tensor ids = at::cat({at::zeros({text_len, 3}, at::kFloat), LatentImageIds(lh, lw)}, 0);
  const auto [cos, sin] = RotaryEmbedding(ids, c.axes_dims_rope, c.rope_theta);
  const SequenceLayout layout = SequenceLayout::Make(mesh, text_len, latents.size(1), cos, sin, device);

  torch_engine::FlowMatchEulerScheduler scheduler(c.scheduler);
  const auto& sc = c.scheduler;
  const double mu = torch_engine::CalculateShift(latents.size(1), sc.base_image_seq_len, sc.max_image_seq_len,
                                                 sc.base_shift, sc.max_shift);
  RETURN_IF_ERROR(scheduler.SetTimesteps(params.steps, mu, torch_engine::FlowMatchEulerScheduler::FluxSigmas(params.steps)));
  const int64_t n = scheduler.num_inference_steps();
  const int64_t batch = latents.size(0);
  // What FluxPipeline passes the transformer: the timestep rounded to the model dtype, then / 1000.
  const at::Tensor timesteps =
      (at::tensor(scheduler.timesteps(), at::kFloat).to(device).to(dtype) / 1000).unsqueeze(1).expand({n, batch});
  const at::Tensor guidance =
      at::full({1}, params.guidance_scale, at::TensorOptions().dtype(at::kFloat).device(device)).expand({batch});

  // 3. Denoising loop. Branch 0 = this rank's first branch (positive unless cfg rank 1), 1 = negative on
  // a rank that runs both. Per branch and request: the embedded text and every step's modulation rows.
  struct Branch {
    at::Tensor txt;   // [B, T_local, D]
    at::Tensor cond;  // [steps, B, mod_dim]
  };
  auto make_branch = [&](const at::Tensor& text_shard, const at::Tensor& pooled) {
    return Branch{transformer.get_method("embed_text")({text_shard}).toTensor(),
                  transformer.get_method("conditioning")({pooled, timesteps, guidance}).toTensor()};
  };
  std::vector<Branch> branches;
  if (run_positive) branches.push_back(make_branch(layout.Text(prompt.hidden), prompt.pooled));
  if (run_negative) branches.push_back(make_branch(layout.Text(negative.hidden), negative.pooled));
  torch_engine::FirstBlockCacheOptions cache_opts;
  cache_opts.threshold = params.cache_threshold;
  cache_opts.warmup_steps = options.cache_warmup_steps;
  cache_opts.max_consecutive_skips = options.cache_max_consecutive_skips;
  torch_engine::FirstBlockCache cache(cache_opts, mesh != nullptr ? mesh->world() : nullptr,
                                      static_cast<int>(branches.size()));
  const at::Tensor valid_img =
      layout.comm != nullptr ? torch_engine::ShardValidMask(layout.img, layout.index, device) : at::Tensor();

  for (int64_t i = 0; i < n; ++i) {
    if (cancelled()) return Cancelled("cancelled before step " + std::to_string(i + 1) + " of " + std::to_string(n));
    std::vector<at::Tensor> preds;
    if (!cache.enabled()) {
      for (const Branch& b : branches) preds.push_back(Full(latents, b.txt, b.cond.select(0, i), layout));
    } else {
      std::vector<Pass> passes;
      for (size_t b = 0; b < branches.size(); ++b) {
        passes.push_back(Begin(latents, branches[b].txt, branches[b].cond.select(0, i), layout, 1));
        cache.Observe(static_cast<int>(b), passes.back().img - passes.back().img_in, valid_img);
      }
      const bool skip = cache.Decide(i);
      for (size_t b = 0; b < branches.size(); ++b) {
        const Pass& p = passes[b];
        const at::Tensor mod = branches[b].cond.select(0, i);
        at::Tensor img;
        if (skip) {
          img = cache.Apply(static_cast<int>(b), {p.img, p.txt})[0];
        } else {
          auto [img_f, txt_f] = Rest(p, mod, layout, 1);
          cache.Store(static_cast<int>(b), {p.img, p.txt}, {img_f, txt_f});
          img = img_f;
        }
        preds.push_back(Head(img, mod, layout));
      }
    }
    at::Tensor noise_pred = preds[0], neg;
    if (run_negative) neg = preds.back();
    if (cfg_parallel) {
      // Exchange the branches once per step; both cfg ranks then step identically.
      at::Tensor both = mesh->cfg()->AllGatherSync(preds[0]);
      noise_pred = both.select(0, 0);
      neg = both.select(0, 1);
    }
    if (do_true_cfg) noise_pred = neg + (noise_pred - neg) * static_cast<double>(params.true_cfg_scale);
    latents = scheduler.Step(noise_pred, i, latents);
    if (raw_options.record_intermediates) out.step_latents.push_back(ToHostFloats(latents));
    ++out.steps_computed;
    control.Progress(Stage::kDenoise, i + 1, n);
  }
  out.steps_skipped = cache.skipped();
  out.steps_computed -= cache.skipped();
  out.cache_decisions = cache.decisions();
  SyncDevice(device);
  end_stage(Stage::kDenoise);
  if (cancelled()) return Cancelled("cancelled before decoding");

  if (raw_options.record_intermediates) out.packed_latents = ToHostFloats(latents, &out.latents_shape);
  // 4. Decode + postprocess. Exports with "vae.parallel": "rows" are decoded split by latent rows over
  // every rank of the group (all ranks hold the same latents here); older exports decode on the leader.
  const bool split_decode = mesh != nullptr && mesh->world() != nullptr && c.vae_parallel_rows;
  if (mesh != nullptr && !mesh->leader() && !split_decode) return out;
  start_stage();
  const at::Tensor image = DecodeLatentsParallel(vae, latents, lh, lw, c.scaling_factor, c.shift_factor,
                                                 split_decode ? mesh->world() : nullptr);
  if (mesh != nullptr && !mesh->leader()) {
    end_stage(Stage::kDecode);
    return out;  // followers' rows are in the leader's image; only the leader returns the result
  }
  const at::Tensor pixels = PostprocessImage(image);  // CPU uint8 [H, W, 3]
  out.height = pixels.size(0);
  out.width = pixels.size(1);
  out.rgb.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
  end_stage(Stage::kDecode);
  control.Progress(Stage::kDecode, 1, 1);
  return out;
}

StatusOr<FluxRawOutput> FluxPipeline::GenerateRaw(const GenerateParams& params, JobControl& control,
                                                  const FluxRawOptions& raw_options) {
  try {
    c10::InferenceMode guard;
    // The job thread's current device (CUDA's is per thread): streams, graphs and NCCL follow it.
    c10::OptionalDeviceGuard device_guard(impl_->device);
    return impl_->Run(params, control, raw_options);
  } catch (const c10::Error& e) {
    return Internal(std::string("flux: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Internal(std::string("flux: ") + e.what());
  }
}

StatusOr<GenerateOutput> FluxPipeline::Generate(const GenerateParams& params, JobControl& control) {
  ASSIGN_OR_RETURN(FluxRawOutput raw, GenerateRaw(params, control));
  GenerateOutput out;
  if (impl_->options.mesh != nullptr && !impl_->options.mesh->leader()) {
    out.timings = std::move(raw.timings);
    out.steps_computed = raw.steps_computed;
    out.steps_skipped = raw.steps_skipped;
    return out;  // followers return no data
  }
  const auto t0 = Clock::now();
  const io::PngText text = {
      {"model", impl_->options.info.name},
      {"prompt", params.prompt},
      {"negative_prompt", params.negative_prompt},
      {"seed", std::to_string(params.seed)},
      {"steps", std::to_string(params.steps)},
      {"guidance_scale", FormatFloat(params.guidance_scale)},
      {"true_cfg_scale", FormatFloat(params.true_cfg_scale)},
      {"width", std::to_string(raw.width)},
      {"height", std::to_string(raw.height)},
      {"software", "ditserve"},
  };
  out.data = io::EncodePng(raw.rgb.data(), static_cast<int>(raw.width), static_cast<int>(raw.height), 3, text);
  if (out.data.empty()) return Internal("PNG encoding failed");
  out.mime_type = "image/png";
  out.width = raw.width;
  out.height = raw.height;
  out.frames = 1;
  out.seed = params.seed;
  out.timings = std::move(raw.timings);
  out.timings.push_back({Stage::kEncode, Since(t0)});
  out.steps_computed = raw.steps_computed;
  out.steps_skipped = raw.steps_skipped;
  control.Progress(Stage::kEncode, 1, 1);
  return out;
}

}  // namespace ditserve::models::flux
