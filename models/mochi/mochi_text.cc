#include "models/mochi/mochi_text.h"

#include <algorithm>

#include "engine/runtime/torchscript.h"
#include "engine/text/t5_tokenizer.h"

namespace ditserve::models::mochi {

MochiTextEncoder::~MochiTextEncoder() = default;

StatusOr<std::unique_ptr<MochiTextEncoder>> MochiTextEncoder::Load(const MochiConfig& config,
                                                                   const at::Device& device) {
  std::unique_ptr<MochiTextEncoder> enc(new MochiTextEncoder());
  enc->device_ = device;
  enc->dtype_ = config.dtype;
  enc->length_ = config.max_sequence_length;
  enc->zero_empty_ = config.force_zeros_for_empty_prompt;
  ASSIGN_OR_RETURN(enc->tokenizer_, text::T5Tokenizer::Load(config.Path(config.spiece)));
  ASSIGN_OR_RETURN(enc->t5_, runtime::LoadTorchScript(config.Path(config.text_encoder_file), device));
  return enc;
}

PromptEmbeds MochiTextEncoder::Encode(const std::string& prompt) {
  // padding="max_length", truncation: the text's tokens (cut to L - 1), EOS, then pad; the mask covers the
  // tokens and EOS.
  std::vector<int64_t> ids = tokenizer_->Encode(prompt, static_cast<int>(length_));
  TORCH_CHECK(static_cast<int64_t>(ids.size()) == length_, "T5 tokenizer returned ", ids.size(), " ids; expected ",
              length_);
  int64_t real = std::min<int64_t>(static_cast<int64_t>(tokenizer_->Tokenize(prompt).size()) + 1, length_);
  if (zero_empty_ && prompt.empty()) {  // diffusers tests `prompt == ""` exactly
    std::fill(ids.begin(), ids.end(), 0);
    real = 0;
  }
  const at::Tensor id_tensor = at::tensor(ids, at::kLong).view({1, length_}).to(device_);
  at::Tensor mask = at::zeros({1, length_}, at::kLong);
  mask.narrow(1, 0, real).fill_(1);
  mask = mask.to(device_);
  PromptEmbeds out;
  out.hidden = runtime::FirstTensor(t5_.forward({id_tensor, mask}), "text_encoder.pt").to(dtype_);
  TORCH_CHECK(out.hidden.dim() == 3 && out.hidden.size(1) == length_, "text_encoder.pt returned ",
              out.hidden.sizes(), "; expected [1, ", length_, ", D]");
  out.mask = mask.to(at::kBool);
  return out;
}

}  // namespace ditserve::models::mochi
