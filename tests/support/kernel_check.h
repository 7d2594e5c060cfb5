// Shared by the GPU kernel tests (llama.cpp test-backend-ops style): fresh random inputs per run with the
// seed printed (DITSERVE_KERNEL_SEED replays one), and the normalised error the checks are stated in.
// Header-only: only torch-linked GPU tests include it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

#include <ATen/ATen.h>

namespace ditserve::testing {

// A new seed per call: DITSERVE_KERNEL_SEED, then +1 each call; else random_device.
inline uint64_t Seed() {
  static uint64_t next = [] {
    const char* env = std::getenv("DITSERVE_KERNEL_SEED");
    return env ? std::strtoull(env, nullptr, 10) : uint64_t(std::random_device{}());
  }();
  std::printf("seed %llu\n", static_cast<unsigned long long>(next));
  return next++;
}

inline at::TensorOptions CudaBf16() { return at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA); }

// ||got - want|| / ||want||, in float64 on the CPU.
inline double NormError(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor w = want.to(at::kDouble).cpu();
  return ((got.to(at::kDouble).cpu() - w).norm() / w.norm()).item<double>();
}

}  // namespace ditserve::testing
