#include "engine/runtime/frames.h"

namespace ditserve::runtime {

at::Tensor FramesToUint8(const at::Tensor& frames) {
  TORCH_CHECK(frames.dim() == 4 && frames.size(1) == 3, "decoder returned ", frames.sizes(),
              "; expected frames [F, 3, H, W]");
  constexpr int64_t kChunk = 8;
  const int64_t f = frames.size(0);
  at::Tensor out = at::empty({f, frames.size(2), frames.size(3), 3}, at::TensorOptions().dtype(at::kByte));
  for (int64_t begin = 0; begin < f; begin += kChunk) {
    const int64_t len = std::min(kChunk, f - begin);
    at::Tensor x = (frames.narrow(0, begin, len) * 0.5 + 0.5).clamp(0, 1);
    x = x.to(at::kCPU).permute({0, 2, 3, 1}).to(at::kFloat);
    out.narrow(0, begin, len).copy_((x * 255).round().to(at::kByte));
  }
  return out;
}

}  // namespace ditserve::runtime
