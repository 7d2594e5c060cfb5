// Replays a device computation from CUDA graphs, one per input signature: the first call for a
// signature runs it eagerly a few times (TorchScript's profiling executor settles and cuDNN builds its
// plans), then captures it; later calls copy the inputs into the captured static buffers and replay.
// This removes the per-op host cost (TorchScript interpretation, ~3k kernel launches per FLUX step)
// that otherwise leaves the GPU idle between kernels.
//
// The function must be a pure device computation of its inputs: no host synchronisation, no host-side
// branching on values, and every tensor that changes between calls passed as an input (captured
// buffers are reused, so anything else it reads must outlive the cache).
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace ditserve::runtime {

class CudaGraphCache {
 public:
  using Fn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;
  explicit CudaGraphCache(size_t max_graphs = 4);
  ~CudaGraphCache();

  // Runs fn(inputs) (all CUDA tensors) through the graph captured for `key` + the input shapes and
  // dtypes. The result is a fresh tensor (a copy of the graph's static output).
  at::Tensor Run(const std::string& key, const std::vector<at::Tensor>& inputs, const Fn& fn);

  size_t size() const;
  // A cache whose capture failed once is disabled for good: its owner runs eagerly from then on.
  bool enabled() const { return enabled_; }
  void Disable();

 private:
  struct Entry;
  size_t max_graphs_;
  bool enabled_ = true;
  std::vector<std::pair<std::string, std::unique_ptr<Entry>>> entries_;  // most recently used last
};

}  // namespace ditserve::runtime
