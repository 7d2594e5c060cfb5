// The initial noise of a request, drawn as diffusers' randn_tensor does with a CPU generator
// (torch.Generator("cpu").manual_seed(seed)): on the CPU in the target dtype, then moved to the device, so
// every rank and every device draws the same numbers.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace ditserve::runtime {

at::Tensor InitialNoise(uint64_t seed, at::IntArrayRef shape, at::ScalarType dtype, const at::Device& device);

}  // namespace ditserve::runtime
