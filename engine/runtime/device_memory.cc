#include "engine/runtime/device_memory.h"

#include <c10/core/CachingDeviceAllocator.h>

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

}  // namespace ditserve::runtime
