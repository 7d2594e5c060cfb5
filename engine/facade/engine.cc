// Engine::Create and the single-rank engine: model directory -> registry family -> Pipeline.
#include "ditserve/engine.h"
#include "ditserve/request.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/jit/codegen/fuser/interface.h>
#include <torch/csrc/jit/passes/tensorexpr_fuser.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include "engine/runtime/attention_op.h"
#include "engine/runtime/cp/cp_attention.h"
#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/fp8_attention.h"
#include "engine/runtime/fp8_linear.h"
#include "models/registry.h"

namespace ditserve {
namespace {

// TorchScript runs the exported graphs as exported: no profiling executor and no JIT fusers. With them,
// the first requests of every new shape recompiled fusion groups (NVRTC: seconds for the text encoders
// and the VAE) and the generated kernels were slower than the engine's (a gelu + cat group at ~1 TB/s);
// the memory-bound chains that matter are the ditserve ops' own kernels. Process-wide: one engine per
// worker process.
void UseAsExportedTorchScript() {
  torch::jit::getProfilingMode() = false;
  torch::jit::setTensorExprFuserEnabled(false);
  torch::jit::overrideCanFuseOnGPU(false);
  torch::jit::overrideCanFuseOnCPU(false);
}

StatusOr<at::Device> ParseDevice(const std::string& spec) {
  at::Device device(at::kCPU);
  try {
    device = at::Device(spec);
  } catch (const c10::Error& e) {
    return InvalidArgument("invalid device \"" + spec + "\" (expected \"cpu\" or \"cuda:N\")");
  }
  if (device.is_cpu()) return device;
  if (!device.is_cuda()) return InvalidArgument("unsupported device \"" + spec + "\" (expected \"cpu\" or \"cuda:N\")");
  if (!at::hasCUDA()) return FailedPrecondition("device \"" + spec + "\" requested but CUDA is not available");
  const auto count = c10::impl::getDeviceGuardImpl(at::kCUDA)->deviceCount();
  if (!device.has_index()) device = at::Device(at::kCUDA, 0);
  if (device.index() >= count) {
    return FailedPrecondition("device \"" + spec + "\" requested but only " + std::to_string(count) +
                              " CUDA device(s) are visible");
  }
  return device;
}

class TorchEngine final : public Engine {
 public:
  TorchEngine(ModelInfo info, std::unique_ptr<runtime::Pipeline> pipeline)
      : info_(std::move(info)), pipeline_(std::move(pipeline)) {}

  const ModelInfo& info() const override { return info_; }

  StatusOr<GenerateOutput> Generate(const GenerateParams& params, JobControl& control) override {
    RETURN_IF_ERROR(ValidateParams(info_, params));
    return pipeline_->Generate(params, control);
  }

 private:
  ModelInfo info_;
  std::unique_ptr<runtime::Pipeline> pipeline_;
};

}  // namespace

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return InvalidArgument("rank " + std::to_string(options.rank) + " is outside world_size " +
                           std::to_string(options.world_size));
  }
  if (options.cfg < 1 || options.cfg > 2) return InvalidArgument("cfg must be 1 or 2 (two CFG branches at most)");
  if (options.cfg * options.ulysses * options.ring != options.world_size) {
    return InvalidArgument("cfg * ulysses * ring must equal world_size");
  }
  ASSIGN_OR_RETURN(ModelInfo info, ReadModelInfo(options.model_dir));
  ASSIGN_OR_RETURN(at::Device device, ParseDevice(options.device));
  // An fp8 export on a GPU without FP8 GEMMs would run, dequantising every weight each step: refuse it.
  if (info.weights.rfind("fp8", 0) == 0 && device.is_cuda() && !runtime::Fp8GemmsRunOn(device)) {
    return FailedPrecondition("model " + info.name + " has " + info.weights + " weights, whose FP8 GEMMs need a GPU "
                              "of compute capability >= 8.9 (Ada, Hopper or newer) and a build with ditserve's CUDA "
                              "kernels, which " + device.str() + " in this build lacks: export the model without --fp8");
  }
  // Elsewhere on a GPU FP8 attention would run its reference, which materialises every score: refuse it.
  if (options.fp8_attention && device.is_cuda() && !runtime::Fp8AttentionRunsOn(device)) {
    return FailedPrecondition("fp8_attention needs a GPU of compute capability 9.x (Hopper) and a build with the "
                              "cuDNN frontend (scripts/fetch_cudnn_frontend.sh), which " + device.str() +
                              " in this build lacks: turn fp8_attention off for this group");
  }
  if (options.intra_op_threads < 0) return InvalidArgument("intra_op_threads must be >= 0");
  if (options.cache_warmup_steps < 1 || options.cache_max_consecutive_skips < 0) {
    return InvalidArgument("cache_warmup_steps must be >= 1 and cache_max_consecutive_skips >= 0");
  }
  if (options.intra_op_threads > 0) at::set_num_threads(options.intra_op_threads);
  UseAsExportedTorchScript();
  std::shared_ptr<runtime::DeviceMesh> mesh;
  if (options.world_size > 1) {
    runtime::MeshOptions mo;
    mo.rank = options.rank;
    mo.cfg = options.cfg;
    mo.ulysses = options.ulysses;
    mo.ring = options.ring;
    mo.store_host = options.store_host;
    mo.store_port = options.store_port;
    mo.device = device;
    ASSIGN_OR_RETURN(mesh, runtime::DeviceMesh::Create(mo));
  }
  // A single sequence rank attends over its full sequence; otherwise the shards attend together.
  if (mesh && mesh->sequence_size() > 1) {
    runtime::SetAttentionBackend(std::make_shared<runtime::ContextParallelAttention>(mesh, options.fp8_attention));
  } else {
    runtime::SetAttentionBackend(std::make_shared<runtime::SdpaAttentionBackend>(options.fp8_attention));
  }

  runtime::PipelineOptions popts;
  popts.info = info;
  popts.device = device.str();
  popts.mesh = mesh;
  popts.cache_warmup_steps = options.cache_warmup_steps;
  popts.cache_max_consecutive_skips = options.cache_max_consecutive_skips;
  popts.cuda_graphs = options.cuda_graphs;
  popts.video_crf = options.video_crf;
  popts.prompt_in_metadata = options.prompt_in_metadata;
  popts.device_memory_limit = options.device_memory_limit;
  try {
    ASSIGN_OR_RETURN(std::unique_ptr<runtime::Pipeline> pipeline, models::CreatePipeline(popts));
    return std::unique_ptr<Engine>(new TorchEngine(std::move(info), std::move(pipeline)));
  } catch (const c10::Error& e) {
    return Internal("loading " + options.model_dir + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Internal("loading " + options.model_dir + ": " + e.what());
  }
}

}  // namespace ditserve
