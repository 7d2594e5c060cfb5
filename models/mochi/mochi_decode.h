// AutoencoderKLMochi decode as MochiPipeline runs it: de-normalise the latents per channel
// (z * std / scaling_factor + mean), decode (in latent-frame chunks, optionally split by latent rows over a
// group's ranks), frames out.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include "models/mochi/mochi_config.h"

namespace ditserve::runtime {
class Communicator;
}

namespace ditserve::models::mochi {

// Latent frames per decode_chunk call (6 x as many video frames): bounds the decoder's activations (about
// kDecodeFullResTensors 128-channel full-resolution tensors of that many frames, ~1.25 GB each in bf16 at
// 480x848) whatever the video's length; the chunks concatenate to exactly the one-shot decode (the decoder's T
// convs carry their history). 4 ran out of memory at 480x848x163 on an 80 GB H100 beside the loaded weights.
inline constexpr int64_t kLatentFramesPerChunk = 2;
// The decoder's peak in 128-channel full-resolution tensors of one chunk's frames (model dtype): its fp32
// group norms and causal pads beside a resnet's input, output and the upsampler's depth-to-space projection.
// Measured 20.3-21.6 in bf16 (peak RSS of one decode_chunk, 2 and 4 latent frames at 120x208 and 240x416, CPU);
// 4-frame chunks at 21 of them (52 GB) beside 30 GB of weights are the H100's 80 GB out-of-memory.
inline constexpr double kDecodeFullResTensors = 22.0;

// latents [1, C, T, h, w] -> frames [6(T - 1) + 1, 3, 8h, 8w] in [-1, 1] (unclamped). With `split`, every rank
// of it calls this with the same latents and decodes its rows; every rank returns the whole video.
at::Tensor DecodeVideo(torch::jit::Module& vae, const MochiConfig& config, const at::Tensor& latents,
                       runtime::Communicator* split);

}  // namespace ditserve::models::mochi
