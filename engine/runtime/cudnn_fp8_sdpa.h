// cuDNN's fused FP8 flash attention forward (through the cuDNN frontend's graph API), for fp8_attention.h.
// Hopper runs it with e4m3 q/k/v and an e4m3 output only (bf16 output is Blackwell's); the caller quantises
// and dequantises. One cuDNN graph and plan per shape and stride set, built on first use and cached.
#pragma once

#include <ATen/core/Tensor.h>

namespace ditserve::runtime {

struct CudnnFp8SdpaArgs {
  at::Tensor q, k, v;  // float8_e4m3fn [B, H, S, D], unit stride on D, other strides multiples of 16
  // float32 [8, 4] on the device (one 16-byte row per scalar, in its first element): descale_q, descale_k,
  // descale_v (absmax / 448), descale_s, scale_s (P's: 1/448, 448), scale_o (O is multiplied by it before its
  // rounding); rows 6 and 7 receive the kernel's amax of S and O (unused).
  at::Tensor scalars;
  at::Tensor out;      // float8_e4m3fn [B, H, S_q, D], written
  at::Tensor stats;    // float32 [B, H, S_q, 1] (log-sum-exp of the scaled scores), written when defined
};  // scores are scaled by 1/sqrt(D), as ditserve::attention's always are

// Throws c10::Error (naming cuDNN's reason) when cuDNN has no plan for the inputs.
void CudnnFp8Sdpa(const CudnnFp8SdpaArgs& args);

// A build with the cuDNN frontend and a device of compute capability 9.x (Hopper; Blackwell takes other
// engines, not tried here).
bool CudnnFp8SdpaAvailable(const at::Device& device);

}  // namespace ditserve::runtime
