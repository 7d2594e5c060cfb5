// CogVideoX prompt encoding, as CogVideoXPipeline._get_t5_prompt_embeds: T5 ids padded / truncated to
// max_sequence_length (226) with EOS, the encoder's last hidden state. No attention mask: the padding tokens
// take part in attention (in T5 and in the transformer), as diffusers.
#pragma once

#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <torch/script.h>

#include "ditserve/status.h"
#include "models/cogvideox/cogvideox_config.h"

namespace ditserve::text {
class T5Tokenizer;
}  // namespace ditserve::text

namespace ditserve::models::cogvideox {

class CogVideoXTextEncoder {
 public:
  static StatusOr<std::unique_ptr<CogVideoXTextEncoder>> Load(const CogVideoXConfig& config, const at::Device& device);
  ~CogVideoXTextEncoder();

  // [1, max_sequence_length, d_model] in the config dtype.
  at::Tensor Encode(const std::string& prompt);

 private:
  CogVideoXTextEncoder() = default;
  at::Device device_{at::kCPU};
  at::ScalarType dtype_ = at::kFloat;
  int64_t length_ = 226;
  std::unique_ptr<text::T5Tokenizer> tokenizer_;
  torch::jit::Module t5_;
};

}  // namespace ditserve::models::cogvideox
