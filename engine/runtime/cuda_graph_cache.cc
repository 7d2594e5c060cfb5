#include "engine/runtime/cuda_graph_cache.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>

namespace ditserve::runtime {

struct CudaGraphCache::Entry {
  at::cuda::CUDAGraph graph;
  std::vector<at::Tensor> inputs;  // static buffers the graph reads
  at::Tensor output;               // static buffer the graph writes
};

namespace {

constexpr int kWarmupRuns = 3;

std::string Signature(const std::string& key, const std::vector<at::Tensor>& inputs) {
  std::string s = key;
  for (const at::Tensor& t : inputs) {
    s += "|" + std::string(c10::toString(t.scalar_type()));
    for (int64_t d : t.sizes()) s += "," + std::to_string(d);
  }
  return s;
}

}  // namespace

CudaGraphCache::CudaGraphCache(size_t max_graphs) : max_graphs_(max_graphs) {}
CudaGraphCache::~CudaGraphCache() = default;

size_t CudaGraphCache::size() const { return entries_.size(); }

void CudaGraphCache::Disable() {
  enabled_ = false;
  entries_.clear();
}

at::Tensor CudaGraphCache::Run(const std::string& key, const std::vector<at::Tensor>& inputs, const Fn& fn) {
  // Capture and replay on the inputs' device, whatever the calling thread's current device is.
  TORCH_CHECK(!inputs.empty() && inputs[0].is_cuda(), "CudaGraphCache::Run needs CUDA inputs");
  const c10::cuda::CUDAGuard device_guard(inputs[0].device());
  const std::string sig = Signature(key, inputs);
  Entry* entry = nullptr;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == sig) {
      std::rotate(entries_.begin() + i, entries_.begin() + i + 1, entries_.end());
      entry = entries_.back().second.get();
      break;
    }
  }
  if (entry == nullptr) {
    if (entries_.size() >= max_graphs_) entries_.erase(entries_.begin());  // least recently used
    auto e = std::make_unique<Entry>();
    for (const at::Tensor& t : inputs) e->inputs.push_back(t.clone());
    // Warm-up and capture on a side stream (capture cannot use the legacy default stream).
    const at::cuda::CUDAStream current = at::cuda::getCurrentCUDAStream();
    const at::cuda::CUDAStream side = at::cuda::getStreamFromPool();
    {
      at::cuda::CUDAEvent ready;
      ready.record(current);
      ready.block(side);
      c10::cuda::CUDAStreamGuard guard(side);
      for (int i = 0; i < kWarmupRuns; ++i) fn(e->inputs);
      e->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      try {
        e->output = fn(e->inputs);
      } catch (...) {
        // Leave the stream usable: abandon the half-recorded graph, then report.
        cudaGraph_t partial = nullptr;
        cudaStreamEndCapture(side.stream(), &partial);
        if (partial != nullptr) cudaGraphDestroy(partial);
        throw;
      }
      e->graph.capture_end();
      at::cuda::CUDAEvent done;
      done.record(side);
      done.block(current);
    }
    entries_.emplace_back(sig, std::move(e));
    entry = entries_.back().second.get();
  }
  for (size_t i = 0; i < inputs.size(); ++i) entry->inputs[i].copy_(inputs[i]);
  entry->graph.replay();
  return entry->output.clone();
}

}  // namespace ditserve::runtime
