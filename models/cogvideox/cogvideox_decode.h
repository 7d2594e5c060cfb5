// Latents -> frames: CogVideoXPipeline.decode_latents and AutoencoderKLCogVideoX._decode. The decoder runs one
// latent frame batch at a time (2 frames, the first batch taking the odd remainder) and carries its causal
// convolutions' cache from batch to batch, so activation memory is that of one batch however long the video.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <torch/script.h>

namespace ditserve::runtime {
class Communicator;
}

namespace ditserve::models::cogvideox {

// latents [1, F, C, h, w] as the transformer sees them; pad_frames: CogVideoX 1.5's latent-frame padding,
// dropped from the front first; split: the group's ranks to split the rows over (an export with
// "vae.parallel": "rows"), or null. Returns frames [F_out, 3, H, W], the decoder's output in [-1, 1].
at::Tensor DecodeLatents(torch::jit::Module& vae, const at::Tensor& latents, int64_t pad_frames, double scaling_factor,
                         runtime::Communicator* split = nullptr);

}  // namespace ditserve::models::cogvideox
