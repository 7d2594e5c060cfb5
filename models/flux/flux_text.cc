#include "models/flux/flux_text.h"

#include "engine/text/clip_tokenizer.h"
#include "engine/text/t5_tokenizer.h"
#include "engine/runtime/torchscript.h"

namespace ditserve::models::flux {

using runtime::FirstTensor;
using runtime::LoadTorchScript;

FluxTextEncoder::~FluxTextEncoder() = default;

StatusOr<std::unique_ptr<FluxTextEncoder>> FluxTextEncoder::Load(const FluxConfig& config,
                                                                 const at::Device& device) {
  std::unique_ptr<FluxTextEncoder> enc(new FluxTextEncoder());
  enc->device_ = device;
  enc->dtype_ = config.dtype;
  enc->clip_length_ = config.clip_max_length;
  enc->t5_length_ = config.t5_max_sequence_length;
  ASSIGN_OR_RETURN(enc->clip_tokenizer_,
                   text::ClipTokenizer::Load(config.Path(config.clip_vocab), config.Path(config.clip_merges)));
  ASSIGN_OR_RETURN(enc->t5_tokenizer_, text::T5Tokenizer::Load(config.Path(config.t5_spiece)));
  ASSIGN_OR_RETURN(enc->clip_, LoadTorchScript(config.Path(config.text_encoder_file), device));
  ASSIGN_OR_RETURN(enc->t5_, LoadTorchScript(config.Path(config.text_encoder_2_file), device));
  return enc;
}

namespace {

at::Tensor IdsTensor(const std::vector<int64_t>& ids, int64_t length, const char* which, const at::Device& device) {
  TORCH_CHECK(static_cast<int64_t>(ids.size()) == length, which, " tokenizer returned ", ids.size(),
              " ids; expected ", length, " (padded / truncated)");
  return at::tensor(ids, at::kLong).view({1, length}).to(device);
}

}  // namespace

PromptEmbeds FluxTextEncoder::Encode(const std::string& prompt) {
  PromptEmbeds out;
  // _get_clip_prompt_embeds: padding="max_length", truncation, pooler_output.
  const at::Tensor clip_ids = IdsTensor(clip_tokenizer_->Encode(prompt, clip_length_), clip_length_, "CLIP", device_);
  out.pooled = FirstTensor(clip_.forward({clip_ids}), "text_encoder.pt").to(dtype_);
  // _get_t5_prompt_embeds: padding="max_length" to max_sequence_length, truncation.
  const at::Tensor t5_ids = IdsTensor(t5_tokenizer_->Encode(prompt, t5_length_), t5_length_, "T5", device_);
  out.hidden = FirstTensor(t5_.forward({t5_ids}), "text_encoder_2.pt").to(dtype_);
  TORCH_CHECK(out.pooled.dim() == 2 && out.hidden.dim() == 3, "text encoders returned pooled ", out.pooled.sizes(),
              " and hidden ", out.hidden.sizes(), "; expected [1, D] and [1, L, D]");
  return out;
}

}  // namespace ditserve::models::flux
