#include "engine/runtime/noise.h"

#include <ATen/CPUGeneratorImpl.h>

namespace ditserve::runtime {

at::Tensor InitialNoise(uint64_t seed, at::IntArrayRef shape, at::ScalarType dtype, const at::Device& device) {
  // manual_seed(seed): a fresh mt19937 seeded with `seed`.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(dtype).device(at::kCPU)).to(device);
}

}  // namespace ditserve::runtime
