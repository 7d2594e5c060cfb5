#pragma once
// Peak device memory of a pipeline stage, from the device's caching allocator (CUDA): what the stage
// itself needed, which nvidia-smi's process total (CUDA context, cached blocks, other stages) hides.
#include <cstdint>
#include <exception>

#include <c10/core/Device.h>

namespace ditserve::runtime {

// Starts a stage: resets the allocator's peak of allocated bytes. No-op on the CPU.
void ResetDevicePeak(const c10::Device& device);

// Peak allocated bytes since the last ResetDevicePeak; 0 on the CPU (not measured).
uint64_t DevicePeakBytes(const c10::Device& device);

// Bytes a new allocation could still get on the device: free in the driver plus what the caching allocator
// holds unused. UINT64_MAX on the CPU (not limited here).
uint64_t DeviceAvailableBytes(const c10::Device& device);

// Whether `e` is an allocation failure of device (or host) memory: c10::OutOfMemoryError, or its text when the
// TorchScript interpreter has rethrown it as a plain std::runtime_error (it does so for every error raised
// inside an exported module, so a CUDA OOM in the transformer or the VAE arrives with its type lost).
bool IsOutOfMemory(const std::exception& e);

}  // namespace ditserve::runtime
