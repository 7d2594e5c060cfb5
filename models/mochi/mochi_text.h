// Mochi prompt encoding: T5 (hidden states and the attention mask, max_sequence_length tokens), as
// MochiPipeline._get_t5_prompt_embeds, including force_zeros_for_empty_prompt (an empty prompt's ids and mask
// are zeroed before the encoder runs).
#pragma once

#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "ditserve/status.h"
#include "models/mochi/mochi_config.h"

namespace ditserve::text {
class T5Tokenizer;
}  // namespace ditserve::text

namespace ditserve::models::mochi {

struct PromptEmbeds {
  at::Tensor hidden;  // T5 last_hidden_state [1, L, d_model], config dtype
  at::Tensor mask;    // bool [1, L]: the tokenizer's attention mask (all false for a zeroed empty prompt)
};

class MochiTextEncoder {
 public:
  static StatusOr<std::unique_ptr<MochiTextEncoder>> Load(const MochiConfig& config, const at::Device& device);
  ~MochiTextEncoder();

  PromptEmbeds Encode(const std::string& prompt);

 private:
  MochiTextEncoder() = default;
  at::Device device_{at::kCPU};
  at::ScalarType dtype_ = at::kFloat;
  int64_t length_ = 256;
  bool zero_empty_ = true;
  std::unique_ptr<text::T5Tokenizer> tokenizer_;
  torch::jit::Module t5_;
};

}  // namespace ditserve::models::mochi
