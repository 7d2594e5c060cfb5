// cuDNN frontend graph for FP8 attention; contract in cudnn_fp8_sdpa.h. Compiled with the frontend's headers
// only (DITSERVE_HAVE_CUDNN_FRONTEND); without them the kernel is reported unavailable.
#include "engine/runtime/cudnn_fp8_sdpa.h"

#include <c10/util/Exception.h>

#ifdef DITSERVE_HAVE_CUDNN_FRONTEND
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cudnn/Handle.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <cudnn_frontend.h>
#endif

namespace ditserve::runtime {

#ifdef DITSERVE_HAVE_CUDNN_FRONTEND
namespace {

namespace fe = cudnn_frontend;

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDescaleQ, kDescaleK, kDescaleV, kDescaleS, kScaleS, kScaleO, kAmaxS, kAmaxO };

std::vector<int64_t> Vec(at::IntArrayRef a) { return {a.begin(), a.end()}; }

void Check(fe::error_t e, const char* what) {
  TORCH_CHECK(e.is_good(), "ditserve FP8 attention: cuDNN ", what, ": ", e.get_message());
}

std::shared_ptr<fe::graph::Graph> Build(const CudnnFp8SdpaArgs& a, cudnnHandle_t handle) {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::FP8_E4M3)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto input = [&](const char* name, Uid uid, const at::Tensor& t) {
    return g->tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(Vec(t.sizes())).set_stride(
        Vec(t.strides())));
  };
  auto scalar = [&](const char* name, Uid uid) {
    return g->tensor(fe::graph::Tensor_attributes()
                         .set_name(name)
                         .set_uid(uid)
                         .set_dim({1, 1, 1, 1})
                         .set_stride({1, 1, 1, 1})
                         .set_data_type(fe::DataType_t::FLOAT));
  };
  auto q = input("Q", kQ, a.q), k = input("K", kK, a.k), v = input("V", kV, a.v);
  auto options = fe::graph::SDPA_fp8_attributes()
                     .set_name("sdpa_fp8")
                     .set_generate_stats(a.stats.defined())
                     .set_causal_mask(false)
                     .set_attn_scale(static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.q.size(3)))));
  auto [o, stats, amax_s, amax_o] =
      g->sdpa_fp8(q, k, v, scalar("Descale_Q", kDescaleQ), scalar("Descale_K", kDescaleK),
                  scalar("Descale_V", kDescaleV), scalar("Descale_S", kDescaleS), scalar("Scale_S", kScaleS),
                  scalar("Scale_O", kScaleO), options);
  o->set_output(true).set_uid(kO).set_dim(Vec(a.out.sizes())).set_stride(Vec(a.out.strides()));
  for (auto& [t, uid] : {std::pair{amax_s, kAmaxS}, std::pair{amax_o, kAmaxO}}) {
    t->set_output(true).set_uid(uid).set_dim({1, 1, 1, 1}).set_stride({1, 1, 1, 1}).set_data_type(
        fe::DataType_t::FLOAT);
  }
  if (a.stats.defined()) {
    stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim(Vec(a.stats.sizes()))
        .set_stride(Vec(a.stats.strides()));
  }
  Check(g->validate(), "graph validation");
  Check(g->build_operation_graph(handle), "operation graph");
  Check(g->create_execution_plans({fe::HeurMode_t::A}), "execution plans");
  Check(g->check_support(handle), "support check");
  // Every plan the heuristics offer: the first call times them (Tune) and keeps the fastest.
  Check(g->build_plans(handle, fe::BuildPlanPolicy_t::ALL), "plan build");
  return g;
}

// Graphs by device, shapes and strides. Built once each: a model has a handful of attention shapes.
class GraphCache {
 public:
  struct Entry {
    std::shared_ptr<fe::graph::Graph> graph;
    bool tuned = false;
  };

  // The graph for a's shapes; `tune` runs once per graph, under the lock (it reorders the graph's plans), on the
  // first call outside a CUDA-graph capture (timing synchronises the device).
  template <typename Tune>
  std::shared_ptr<fe::graph::Graph> Get(const CudnnFp8SdpaArgs& a, cudnnHandle_t handle, Tune&& tune) {
    std::vector<int64_t> key = {a.q.get_device(), a.stats.defined() ? 1 : 0};
    for (const at::Tensor* t : {&a.q, &a.k, &a.v, &a.out}) {
      key.insert(key.end(), t->sizes().begin(), t->sizes().end());
      key.insert(key.end(), t->strides().begin(), t->strides().end());
    }
    std::lock_guard<std::mutex> lock(mu_);
    Entry& slot = graphs_[key];
    if (!slot.graph) slot.graph = Build(a, handle);
    if (!slot.tuned && c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None) {
      tune(*slot.graph);
      slot.tuned = true;
    }
    return slot.graph;
  }

 private:
  std::mutex mu_;
  std::map<std::vector<int64_t>, Entry> graphs_;
};

}  // namespace

void CudnnFp8Sdpa(const CudnnFp8SdpaArgs& a) {
  static auto* cache = new GraphCache();  // process lifetime: graphs outlive every caller
  const c10::cuda::CUDAGuard guard(a.q.device());
  cudnnHandle_t handle = at::native::getCudnnHandle();  // on torch's current stream
  float* s = a.scalars.data_ptr<float>();
  const int64_t row = a.scalars.stride(0);
  std::unordered_map<int64_t, void*> pack = {
      {kQ, a.q.data_ptr()},        {kK, a.k.data_ptr()},          {kV, a.v.data_ptr()},
      {kO, a.out.data_ptr()},      {kDescaleQ, s},                {kDescaleK, s + row},
      {kDescaleV, s + 2 * row},    {kDescaleS, s + 3 * row},      {kScaleS, s + 4 * row},
      {kScaleO, s + 5 * row},      {kAmaxS, s + 6 * row},         {kAmaxO, s + 7 * row}};
  if (a.stats.defined()) pack[kStats] = a.stats.data_ptr();
  auto workspace = [&](int64_t bytes) {
    return at::empty({std::max<int64_t>(bytes, 1)}, a.q.options().dtype(at::kByte));
  };
  std::shared_ptr<fe::graph::Graph> graph = cache->Get(a, handle, [&](fe::graph::Graph& g) {
    // Outputs are written by each timed plan and again by the execution below.
    at::Tensor ws = workspace(g.get_autotune_workspace_size());
    Check(g.autotune(handle, pack, ws.data_ptr()), "autotune");
  });
  int64_t workspace_bytes = 0;
  Check(graph->get_workspace_size(workspace_bytes), "workspace size");
  at::Tensor ws = workspace(workspace_bytes);
  Check(graph->execute(handle, pack, ws.data_ptr()), "execute");
}

bool CudnnFp8SdpaAvailable(const at::Device& device) {
  if (!device.is_cuda()) return false;
  const auto* prop = at::cuda::getDeviceProperties(device.index() < 0 ? at::cuda::current_device() : device.index());
  return prop->major == 9;
}

#else

void CudnnFp8Sdpa(const CudnnFp8SdpaArgs&) {
  TORCH_CHECK(false, "ditserve FP8 attention: this build has no cuDNN frontend (scripts/fetch_cudnn_frontend.sh)");
}

bool CudnnFp8SdpaAvailable(const at::Device&) { return false; }

#endif

}  // namespace ditserve::runtime
