// HunyuanVideo prompt encoding, as HunyuanVideoPipeline.encode_prompt (diffusers 0.34): the prompt in the
// Llama chat template, tokenised to crop_start + 256 tokens (right padding), Llama's hidden_states[-3] and the
// attention mask, both cropped by crop_start (the template's system part); CLIP-L's pooled output of the raw
// prompt (77 tokens).
#pragma once

#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "ditserve/status.h"
#include "models/hunyuan_video/hunyuan_video_config.h"

namespace ditserve::text {
class BpeTokenizer;
class ClipTokenizer;
}  // namespace ditserve::text

namespace ditserve::models::hunyuan_video {

struct PromptEmbeds {
  at::Tensor hidden;  // Llama hidden_states[-3] after the crop [1, 256, 4096], config dtype
  at::Tensor mask;    // int64 [1, 256]: 1 for prompt tokens, 0 for padding
  at::Tensor pooled;  // CLIP pooled output [1, 768], config dtype
};

class HunyuanVideoTextEncoder {
 public:
  static StatusOr<std::unique_ptr<HunyuanVideoTextEncoder>> Load(const HunyuanVideoConfig& config,
                                                                 const at::Device& device);
  ~HunyuanVideoTextEncoder();

  StatusOr<PromptEmbeds> Encode(const std::string& prompt);

 private:
  HunyuanVideoTextEncoder() = default;
  at::Device device_{at::kCPU};
  at::ScalarType dtype_ = at::kFloat;
  std::string template_;
  int64_t crop_start_ = 0, length_ = 256, clip_length_ = 77;
  std::unique_ptr<text::BpeTokenizer> llama_tokenizer_;
  std::unique_ptr<text::ClipTokenizer> clip_tokenizer_;
  torch::jit::Module llama_, clip_;
};

}  // namespace ditserve::models::hunyuan_video
