// Byte-level BPE tokenizer from an HF tokenizer.json (GPT-2 / Llama-3 layout), reproducing transformers'
// fast tokenizers (PreTrainedTokenizerFast, LlamaTokenizerFast; transformers 4.56, tokenizers 0.22):
//
//   auto tok = BpeTokenizer::Load(dir);   // dir/tokenizer.json [+ tokenizer_config.json, special_tokens_map.json]
//   tok->Encode(text, L) == AutoTokenizer-class.from_pretrained(dir)(text, max_length=L,
//                              padding="max_length", truncation=True, return_attention_mask=True)
//
// HunyuanVideo (diffusers' HunyuanVideoPipeline._get_llama_prompt_embeds): Encode(template.format(prompt),
// max_sequence_length + crop_start), i.e. L = 256 + 95 with the default template; the result's
// attention_mask is the prompt mask before the crop. For a template without crop_start, diffusers uses
// crop_start = Tokenize(template, /*add_special_tokens=*/true).size() - 2.
//
// Pipeline (each step as tokenizers does it; anything else in the file is refused by Load, naming it):
//  1. Added tokens ("added_tokens", e.g. "<|begin_of_text|>", "<|eot_id|>") are split off the raw text
//     first and become their single ids (added_vocabulary.h).
//  2. normalizer: must be null.
//  3. pre_tokenizer: ByteLevel, or Sequence[Split(regex or string, behavior Isolated, invert false)...,
//     ByteLevel]. Split regexes (Llama-3's with \p{L}, \p{N}, (?i:'s|...), \s+(?!\S)) run on ICU with
//     tokenizers' Unicode classes (onig_regex.h). ByteLevel: add_prefix_space prefixes " " to every piece
//     that does not start with one; use_regex splits with GPT-2's regex; bytes map to the byte-level
//     alphabet (byte_level.h).
//  4. model: BPE with ignore_merges, byte_fallback, unk_token / fuse_unk as in the file (bpe_model.h);
//     dropout, continuing_subword_prefix and end_of_word_suffix must be null.
//  5. post_processor: TemplateProcessing (e.g. BOS + $A), ByteLevel, a Sequence of them, or null. With
//     tokenizer_class LlamaTokenizer[Fast] in tokenizer_config.json the template is rebuilt from
//     add_bos_token / add_eos_token, as LlamaTokenizerFast.update_post_processor() does.
//  6. Truncation of the text's ids to max_length minus the template's special tokens (truncation_side),
//     then the template, then padding to max_length with the pad token (padding_side).
// tokenizer_config.json gives padding_side (default: "left" for LlamaTokenizer[Fast], whose class
// attribute says so, else "right"), truncation_side (default "right") and the special tokens (pad_token;
// special_tokens_map.json overrides it, as in transformers). Special or added tokens of the config files
// that are not in tokenizer.json are refused (transformers would append them as new tokens).
//
// Input must be valid UTF-8 (InvalidArgument otherwise, naming the byte offset): the Python tokenizer
// only takes str, so there is no reference for other bytes, and protobuf string fields are UTF-8.
// Encode() / Tokenize() are const and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ditserve/status.h"
#include "engine/text/added_vocabulary.h"
#include "engine/text/bpe_model.h"
#include "engine/text/byte_level.h"
#include "engine/text/onig_regex.h"

namespace ditserve::text {

class BpeTokenizer {
 public:
  enum class Side { kLeft, kRight };

  struct Encoding {
    std::vector<int64_t> input_ids;
    std::vector<int64_t> attention_mask;  // 1 for every token (special ones too), 0 for padding
  };

  // dir/tokenizer.json is required; dir/tokenizer_config.json and dir/special_tokens_map.json are read
  // when present.
  static StatusOr<std::unique_ptr<BpeTokenizer>> Load(const std::string& dir);

  // Exactly max_length ids (max_length >= num_special_tokens()), padded with pad_id(). Fails when the
  // tokenizer has no pad token (transformers raises then too) or the text is not valid UTF-8.
  StatusOr<Encoding> Encode(std::string_view text, int max_length) const;

  // tokenizer(text, add_special_tokens=...).input_ids: no truncation, no padding.
  StatusOr<std::vector<int64_t>> Tokenize(std::string_view text, bool add_special_tokens = true) const;

  // Added tokens first, then the model vocabulary.
  std::optional<int64_t> TokenToId(std::string_view token) const;

  int64_t pad_id() const { return pad_id_; }  // -1: no pad token
  Side padding_side() const { return padding_side_; }
  Side truncation_side() const { return truncation_side_; }
  // Ids the post-processor adds around one sequence (Llama-3: 1, the BOS).
  int num_special_tokens() const { return static_cast<int>(prefix_.size() + suffix_.size()); }
  // len(tokenizer): the model vocabulary plus added tokens outside it.
  int64_t vocab_size() const { return vocab_size_; }

 private:
  // One pre-tokenizer step: a Split regex, or ByteLevel.
  struct PreStep {
    std::optional<OnigRegex> split;  // Split(pattern, Isolated)
    bool byte_level = false;
    bool add_prefix_space = false;
    bool use_regex = false;  // ByteLevel's GPT-2 regex (gpt2_regex_)
  };
  friend class BpeTokenizerLoader;

  BpeTokenizer() = default;
  // Pre-tokenizes one piece of text between added tokens and appends its BPE ids.
  Status EncodePlain(std::string_view text, std::vector<int64_t>* out) const;

  AddedVocabulary added_;
  std::unique_ptr<BpeModel> model_;
  ByteLevelAlphabet alphabet_;
  std::vector<PreStep> pre_steps_;
  std::optional<OnigRegex> gpt2_regex_;
  std::vector<int64_t> prefix_, suffix_;  // post-processor ids before / after the sequence
  int64_t pad_id_ = -1;
  Side padding_side_ = Side::kRight;
  Side truncation_side_ = Side::kRight;
  int64_t vocab_size_ = 0;
};

}  // namespace ditserve::text
