// Wall time of a CUDA workload on the current stream (GPU tests' perf modes). Header-only: only
// torch-linked GPU tests include it.
#pragma once

#include <chrono>
#include <functional>

#include <ATen/cuda/CUDAContext.h>

namespace ditserve::testing {

// Milliseconds per call of f: 3 warm-up calls, then the mean of `iters`, synchronised at both ends.
inline double CudaTimeMs(const std::function<void()>& f, int iters = 20) {
  for (int i = 0; i < 3; ++i) f();
  at::cuda::getCurrentCUDAStream().synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  at::cuda::getCurrentCUDAStream().synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

}  // namespace ditserve::testing
