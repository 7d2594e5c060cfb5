#include "engine/runtime/device_memory.h"

#include <c10/core/CachingDeviceAllocator.h>
#ifdef DITSERVE_HAVE_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include <c10/util/Exception.h>

#include <limits>
#include <string_view>

namespace ditserve::runtime {

void ResetDevicePeak(const c10::Device& device) {
  if (device.is_cpu()) return;
  c10::getDeviceAllocator(device.type())->resetPeakStats(device.index());
}

uint64_t DevicePeakBytes(const c10::Device& device) {
  if (device.is_cpu()) return 0;
  const auto stats = c10::getDeviceAllocator(device.type())->getDeviceStats(device.index());
  const auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return static_cast<uint64_t>(stats.allocated_bytes[agg].peak);
}

uint64_t DeviceAvailableBytes(const c10::Device& device) {
#ifdef DITSERVE_HAVE_TORCH_CUDA
  if (device.is_cuda()) {
    const c10::cuda::CUDAGuard guard(device);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return std::numeric_limits<uint64_t>::max();
    const auto stats = c10::getDeviceAllocator(device.type())->getDeviceStats(device.index());
    const auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    const int64_t cached_unused = stats.reserved_bytes[agg].current - stats.allocated_bytes[agg].current;
    return free + static_cast<uint64_t>(std::max<int64_t>(0, cached_unused));
  }
#endif
  (void)device;
  return std::numeric_limits<uint64_t>::max();
}

bool IsOutOfMemory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const std::string_view what = e.what();
  // CUDACachingAllocator's message; a failed cudaMalloc outside it; the CPU allocator's.
  for (std::string_view text : {"CUDA out of memory", "CUDA error: out of memory", "can't allocate memory"}) {
    if (what.find(text) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace ditserve::runtime
