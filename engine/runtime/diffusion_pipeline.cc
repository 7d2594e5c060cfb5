#include "engine/runtime/diffusion_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/script.h>

#include "ditserve/request.h"
#include "engine/runtime/cp/mesh.h"
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
#include "engine/runtime/cuda_graph_cache.h"
#endif
#include "engine/runtime/device_memory.h"
#include "engine/runtime/frames.h"
#include "engine/runtime/output_encoder.h"

namespace ditserve::runtime {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for queued device work so stage timings mean something on CUDA.
void SyncDevice(const at::Device& device) {
  if (device.is_cpu()) return;
  c10::impl::getDeviceGuardImpl(device.type())->synchronizeDevice(device.index());
}

// Each stage's time and this rank's peak device allocation in it.
class StageClock {
 public:
  StageClock(const at::Device& device, std::vector<StageTime>& out) : device_(device), out_(out) {}
  void Start() {
    ResetDevicePeak(device_);
    t0_ = Clock::now();
  }
  void End(Stage stage) {
    SyncDevice(device_);
    out_.push_back({stage, std::chrono::duration<double>(Clock::now() - t0_).count(), DevicePeakBytes(device_)});
  }

 private:
  const at::Device device_;
  std::vector<StageTime>& out_;
  Clock::time_point t0_ = Clock::now();
};

}  // namespace

HostTensor HostTensor::From(const at::Tensor& t) {
  const at::Tensor host = t.to(at::kCPU).to(at::kFloat).contiguous();
  HostTensor h;
  h.shape.assign(host.sizes().begin(), host.sizes().end());
  h.data.assign(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
  return h;
}

DiffusionPipeline::DiffusionPipeline(PipelineOptions options, std::unique_ptr<FamilyModel> model)
    : options_(std::move(options)), model_(std::move(model)) {
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
  if (options_.cuda_graphs && at::Device(options_.device).is_cuda()) graphs_ = std::make_unique<CudaGraphCache>();
#endif
}

DiffusionPipeline::~DiffusionPipeline() = default;

StatusOr<RawOutput> DiffusionPipeline::Run(const GenerateParams& params, JobControl& control, const RawOptions& raw) {
  const at::Device device(options_.device);
  DeviceMesh* mesh = options_.mesh.get();
  const ModelInfo& info = options_.info;
  ASSIGN_OR_RETURN(const CfgPlan plan, CfgPlan::Make(mesh, UsesCfg(info, params), CfgRuleText(info.cfg)));
  if (const uint64_t need = model_->RequestDeviceBytes(params); need > 0) {
    uint64_t have = DeviceAvailableBytes(device);
    if (options_.device_memory_limit > 0) have = std::min(have, options_.device_memory_limit);
    if (need > have) {
      auto size = [](uint64_t b) {
        const bool gib = b >= (1ull << 30);
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.1f %s", static_cast<double>(b) / (gib ? (1ull << 30) : (1ull << 20)),
                      gib ? "GiB" : "MiB");
        return std::string(buf);
      };
      return ResourceExhausted("this request needs about " + size(need) + " of device memory (" +
                               std::to_string(params.num_frames) + " frames of " + std::to_string(params.width) +
                               "x" + std::to_string(params.height) + "); " + device.str() + " has " + size(have) +
                               (have == options_.device_memory_limit ? " (the device memory limit)" : " free") +
                               ": ask for fewer frames or a smaller size");
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<FamilyRequest> request, model_->Begin(params, plan));
  RawOutput out;
  StageClock clock(device, out.timings);

  clock.Start();
  request->EncodeText();
  clock.End(Stage::kTextEncode);
  control.Progress(Stage::kTextEncode, 1, 1);

  clock.Start();
  ASSIGN_OR_RETURN(Denoising d, request->PrepareDenoising());
  DenoiseOptions opts;
  opts.guidance = d.guidance;
  opts.batch_branches = d.batch_branches;
  opts.cache.threshold = params.cache_threshold;
  opts.cache.warmup_steps = options_.cache_warmup_steps;
  opts.cache.max_consecutive_skips = options_.cache_max_consecutive_skips;
  opts.graphs = graphs_.get();
  opts.record_steps = raw.record_intermediates;
  ASSIGN_OR_RETURN(DenoiseResult result, Denoise(*d.denoiser, *d.scheduler, d.latents, plan, mesh, control, opts));
  d = Denoising();  // the denoiser's per-request tensors are not needed for decoding
  clock.End(Stage::kDenoise);
  out.steps_computed = result.steps_computed;
  out.steps_skipped = result.steps_skipped;
  out.cache_decisions = result.cache_decisions;
  if (raw.record_intermediates) {
    request->Record(out.intermediates);
    out.latents = HostTensor::From(result.latents);
    for (const at::Tensor& s : result.step_latents) out.step_latents.push_back(HostTensor::From(s));
  }
  if (AgreeCancelled(mesh, control)) return Cancelled("cancelled before decoding");

  // Exports that allow it decode split by rows over every rank of the group (all hold the same latents);
  // others decode on the leader alone. Only the leader returns the frames.
  Communicator* split = mesh != nullptr && model_->SplitsDecode() ? mesh->world() : nullptr;
  const bool leader = mesh == nullptr || mesh->leader();
  if (!leader && split == nullptr) return out;
  clock.Start();
  const at::Tensor frames = request->Decode(result.latents, split);
  if (!leader) {
    clock.End(Stage::kDecode);
    return out;
  }
  const at::Tensor pixels = FramesToUint8(frames);
  out.frames = pixels.size(0);
  out.height = pixels.size(1);
  out.width = pixels.size(2);
  out.rgb.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
  clock.End(Stage::kDecode);
  control.Progress(Stage::kDecode, 1, 1);
  return out;
}

StatusOr<RawOutput> DiffusionPipeline::GenerateRaw(const GenerateParams& params, JobControl& control,
                                                   const RawOptions& raw) {
  const std::string& family = options_.info.family;
  try {
    c10::InferenceMode guard;
    // The job thread's current device (CUDA's is per thread): streams, graphs and NCCL follow it.
    c10::OptionalDeviceGuard device_guard(at::Device(options_.device));
    return Run(params, control, raw);
  } catch (const std::exception& e) {
    const c10::Error* c10_error = dynamic_cast<const c10::Error*>(&e);
    const std::string what = c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
    if (!IsOutOfMemory(e)) return Internal(family + ": " + what);
    // Fails this request only: its tensors are gone with the stack, and the cached blocks go back so the next
    // request starts from a clean heap.
    const at::Device device(options_.device);
    if (!device.is_cpu()) c10::getDeviceAllocator(device.type())->emptyCache();
    return ResourceExhausted(family + ": out of device memory: " + what);
  }
}

StatusOr<GenerateOutput> DiffusionPipeline::Generate(const GenerateParams& params, JobControl& control) {
  ASSIGN_OR_RETURN(RawOutput raw, GenerateRaw(params, control));
  GenerateOutput out;
  out.timings = std::move(raw.timings);
  out.steps_computed = raw.steps_computed;
  out.steps_skipped = raw.steps_skipped;
  if (options_.mesh != nullptr && !options_.mesh->leader()) return out;  // followers return no data
  const auto t0 = Clock::now();
  ASSIGN_OR_RETURN(EncodedOutput encoded, EncodeOutput(raw.rgb, raw.frames, raw.width, raw.height, params,
                                                       options_.info.name,
                                                       OutputOptions{options_.video_crf, options_.prompt_in_metadata}));
  out.data = std::move(encoded.data);
  out.mime_type = std::move(encoded.mime_type);
  out.width = raw.width;
  out.height = raw.height;
  out.frames = raw.frames;
  out.seed = params.seed;
  out.timings.push_back({Stage::kEncode, std::chrono::duration<double>(Clock::now() - t0).count()});
  control.Progress(Stage::kEncode, 1, 1);
  return out;
}

}  // namespace ditserve::runtime
