#include "models/hunyuan_video/hunyuan_video_text.h"

#include "engine/runtime/torchscript.h"
#include "engine/text/bpe_tokenizer.h"
#include "engine/text/clip_tokenizer.h"

namespace ditserve::models::hunyuan_video {

using runtime::FirstTensor;
using runtime::LoadTorchScript;

HunyuanVideoTextEncoder::~HunyuanVideoTextEncoder() = default;

StatusOr<std::unique_ptr<HunyuanVideoTextEncoder>> HunyuanVideoTextEncoder::Load(const HunyuanVideoConfig& config,
                                                                                 const at::Device& device) {
  std::unique_ptr<HunyuanVideoTextEncoder> enc(new HunyuanVideoTextEncoder());
  enc->device_ = device;
  enc->dtype_ = config.dtype;
  enc->template_ = config.prompt_template;
  enc->crop_start_ = config.crop_start;
  enc->length_ = config.max_sequence_length;
  enc->clip_length_ = config.clip_max_length;
  if (enc->template_.find("{}") == std::string::npos) {
    return InvalidArgument(config.dir + "/model.json: text_encoder.template has no \"{}\" for the prompt");
  }
  ASSIGN_OR_RETURN(enc->llama_tokenizer_, text::BpeTokenizer::Load(config.Path(config.tokenizer_dir)));
  ASSIGN_OR_RETURN(enc->clip_tokenizer_,
                   text::ClipTokenizer::Load(config.Path(config.clip_vocab), config.Path(config.clip_merges)));
  ASSIGN_OR_RETURN(enc->llama_, LoadTorchScript(config.Path(config.text_encoder_file), device));
  ASSIGN_OR_RETURN(enc->clip_, LoadTorchScript(config.Path(config.text_encoder_2_file), device));
  return enc;
}

StatusOr<PromptEmbeds> HunyuanVideoTextEncoder::Encode(const std::string& prompt) {
  // prompt_template["template"].format(prompt): the one "{}" replaced.
  std::string text = template_;
  text.replace(text.find("{}"), 2, prompt);
  const int64_t total = crop_start_ + length_;
  ASSIGN_OR_RETURN(text::BpeTokenizer::Encoding enc, llama_tokenizer_->Encode(text, static_cast<int>(total)));
  const at::Tensor ids = at::tensor(enc.input_ids, at::kLong).view({1, total}).to(device_);
  const at::Tensor mask = at::tensor(enc.attention_mask, at::kLong).view({1, total}).to(device_);
  PromptEmbeds out;
  const at::Tensor hidden = FirstTensor(llama_.forward({ids, mask}), "text_encoder.pt").to(dtype_);
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(1) == total, "text_encoder.pt returned ", hidden.sizes(),
              "; expected [1, ", total, ", D]");
  out.hidden = hidden.narrow(1, crop_start_, length_);
  out.mask = mask.narrow(1, crop_start_, length_);
  // _get_clip_prompt_embeds: padding="max_length" (77), truncation, pooler_output.
  const std::vector<int64_t> clip_ids = clip_tokenizer_->Encode(prompt, static_cast<int>(clip_length_));
  TORCH_CHECK(static_cast<int64_t>(clip_ids.size()) == clip_length_, "CLIP tokenizer returned ", clip_ids.size(),
              " ids; expected ", clip_length_);
  out.pooled = FirstTensor(clip_.forward({at::tensor(clip_ids, at::kLong).view({1, clip_length_}).to(device_)}),
                           "text_encoder_2.pt")
                   .to(dtype_);
  return out;
}

}  // namespace ditserve::models::hunyuan_video
