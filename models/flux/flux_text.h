// FLUX prompt encoding: CLIP (pooled, 77 tokens) + T5 (hidden states, max_sequence_length tokens), as
// FluxPipeline.encode_prompt with prompt_2 = prompt.
#pragma once

#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "ditserve/status.h"
#include "models/flux/flux_config.h"

namespace ditserve::text {
class ClipTokenizer;
class T5Tokenizer;
}  // namespace ditserve::text

namespace ditserve::models::flux {

struct PromptEmbeds {
  at::Tensor hidden;  // T5 last_hidden_state [1, L, d_model], config dtype
  at::Tensor pooled;  // CLIP pooled output [1, 768], config dtype
};

class FluxTextEncoder {
 public:
  static StatusOr<std::unique_ptr<FluxTextEncoder>> Load(const FluxConfig& config, const at::Device& device);
  ~FluxTextEncoder();

  PromptEmbeds Encode(const std::string& prompt);

 private:
  FluxTextEncoder() = default;
  at::Device device_{at::kCPU};
  at::ScalarType dtype_ = at::kFloat;
  int64_t clip_length_ = 77, t5_length_ = 512;
  std::unique_ptr<text::ClipTokenizer> clip_tokenizer_;
  std::unique_ptr<text::T5Tokenizer> t5_tokenizer_;
  torch::jit::Module clip_, t5_;
};

}  // namespace ditserve::models::flux
