// Decoder output -> 8-bit RGB frames, as diffusers' VaeImageProcessor / VideoProcessor.postprocess with
// output_type="pil": (x * 0.5 + 0.5).clamp(0, 1) in the decoder's dtype, then float32, * 255, rounded half to
// even, uint8.
#pragma once

#include <ATen/ATen.h>

namespace ditserve::runtime {

// frames [F, 3, H, W] in [-1, 1] on any device -> contiguous CPU uint8 [F, H, W, 3]. Converts a few frames at
// a time so a long video never holds a float32 copy of itself on the device or the host.
at::Tensor FramesToUint8(const at::Tensor& frames);

}  // namespace ditserve::runtime
