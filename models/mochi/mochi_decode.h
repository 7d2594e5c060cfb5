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

// Latent frames per decode_chunk call (6 x as many video frames): bounds the decoder's activations (a few
// 128-channel full-resolution tensors of that many frames, ~2.5 GB each in bf16 at 480x848) whatever the video's
// length; the chunks concatenate to exactly the one-shot decode (the decoder's T convs carry their history).
inline constexpr int64_t kLatentFramesPerChunk = 4;

// latents [1, C, T, h, w] -> frames [6(T - 1) + 1, 3, 8h, 8w] in [-1, 1] (unclamped). With `split`, every rank
// of it calls this with the same latents and decodes its rows; every rank returns the whole video.
at::Tensor DecodeVideo(torch::jit::Module& vae, const MochiConfig& config, const at::Tensor& latents,
                       runtime::Communicator* split);

}  // namespace ditserve::models::mochi
