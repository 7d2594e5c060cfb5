#include "models/cogvideox/cogvideox_text.h"

#include <filesystem>

#include "engine/runtime/torchscript.h"
#include "engine/text/t5_tokenizer.h"

namespace ditserve::models::cogvideox {

CogVideoXTextEncoder::~CogVideoXTextEncoder() = default;

StatusOr<std::unique_ptr<CogVideoXTextEncoder>> CogVideoXTextEncoder::Load(const CogVideoXConfig& config,
                                                                           const at::Device& device) {
  std::unique_ptr<CogVideoXTextEncoder> enc(new CogVideoXTextEncoder());
  enc->device_ = device;
  enc->dtype_ = config.dtype;
  enc->length_ = config.max_sequence_length;
  // CogVideoX ships the slow T5Tokenizer (spiece.model, no tokenizer.json): sentencepiece's dummy prefix puts
  // "▁" before the text and before each piece between added tokens, i.e. Metaspace prepend "always".
  const std::string spiece = config.Path(config.spiece);
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(spiece).parent_path() / "tokenizer.json", ec)) {
    ASSIGN_OR_RETURN(enc->tokenizer_, text::T5Tokenizer::Load(spiece));
  } else {
    text::T5TokenizerOptions options = text::T5TokenizerOptions::FromVocabFile();
    options.prepend = text::T5TokenizerOptions::Prepend::kAlways;
    ASSIGN_OR_RETURN(enc->tokenizer_, text::T5Tokenizer::Load(spiece, options));
  }
  ASSIGN_OR_RETURN(enc->t5_, runtime::LoadTorchScript(config.Path(config.text_encoder_file), device));
  return enc;
}

at::Tensor CogVideoXTextEncoder::Encode(const std::string& prompt) {
  const std::vector<int64_t> ids = tokenizer_->Encode(prompt, static_cast<int>(length_));
  TORCH_CHECK(static_cast<int64_t>(ids.size()) == length_, "T5 tokenizer returned ", ids.size(), " ids; expected ",
              length_);
  const at::Tensor t = at::tensor(ids, at::kLong).view({1, length_}).to(device_);
  at::Tensor hidden = runtime::FirstTensor(t5_.forward({t}), "text_encoder.pt").to(dtype_);
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(1) == length_, "text_encoder.pt returned ", hidden.sizes(),
              "; expected [1, ", length_, ", d_model]");
  return hidden;
}

}  // namespace ditserve::models::cogvideox
