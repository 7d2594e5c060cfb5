// T5 SentencePiece-unigram tokenizer reproducing `transformers.T5TokenizerFast` (the tokenizer
// diffusers' FluxPipeline uses for T5-XXL), not raw sentencepiece:
//
//   T5Tokenizer::Load(dir/spiece.model)->Encode(text, L) ==
//       T5TokenizerFast(vocab_file=dir/spiece.model)(text, padding="max_length", max_length=L,
//                                                    truncation=True).input_ids      (no dir/tokenizer.json)
//       T5TokenizerFast.from_pretrained(dir)(...same...).input_ids                 (dir/tokenizer.json)
//
// T5TokenizerFast built from spiece.model is transformers' SpmConverter/T5Converter output (transformers
// 4.56 / tokenizers 0.22, pinned in .venv); this class re-implements that `tokenizers` pipeline:
//  1. Added tokens are split off the raw text first (leftmost-longest, before normalisation): spm control
//     and user-defined pieces, "</s>", "<unk>", "<pad>" and "<extra_id_0>".."<extra_id_99>".
//     T5Converter appends the 100 extra ids to the vocabulary (score 0) in reverse order:
//     <extra_id_99> = piece_size, ..., <extra_id_0> = piece_size + 99.
//  2. Normaliser of every other segment (vocab-file conversion; tokenizer.json may list other steps):
//     Precompiled(spm precompiled_charsmap), applied like
//     tokenizers does (per extended grapheme cluster if shorter than 6 bytes, first/shortest trie match,
//     else per character), then Strip(right), then Replace(" {2,}" -> "▁").
//     This differs from spm's own normaliser (no leading-space removal; a literal "▁" in the text acts
//     as a word separator; etc.).
//  3. Metaspace pre-tokeniser: ' ' -> "▁", "▁" prepended per prepend_scheme, split before each run of
//     "▁". CAUTION: T5TokenizerFast(vocab_file=...) in transformers 4.56 converts with
//     prepend_scheme "never" (no "▁" before the first word: "hello" -> "h","ello"), whereas FLUX's
//     tokenizer_2/tokenizer.json (what FluxPipeline really loads) prepends "▁". Load(spiece_model)
//     therefore follows a sibling tokenizer.json when there is one (see T5TokenizerOptions).
//     Precompiled steps always use spiece.model's charsmap (the converter copies it verbatim).
//  4. Unigram Viterbi per word exactly as tokenizers' Unigram::encode_optimized (all vocabulary strings,
//     control tokens included, are candidates; unknown characters cost min_score - 10; consecutive
//     unknowns are fused into one <unk>).
//  5. Post-processor "$A </s>": ids truncated from the right to max_length-1, then EOS, then right
//     padding with pad_id() (= id of "<pad>", 0 for T5).
// Self-contained: no libsentencepiece (whose bundled protobuf-lite and absl flags clash with gRPC's
// libprotobuf and libc10 in one process). spiece.model is read by spm_model.h, the charsmap applied by
// precompiled_charsmap.h (grapheme clusters from ICU's character BreakIterator, libicu-dev), and words
// segmented by unigram.h.
// Encode() is const and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ditserve/status.h"
#include "engine/text/precompiled_charsmap.h"
#include "engine/text/unigram.h"

namespace ditserve::text {

// The parts of the `tokenizers` pipeline that differ between ways of building T5TokenizerFast.
struct T5TokenizerOptions {
  // Metaspace prepend_scheme.
  enum class Prepend { kNever, kFirst, kAlways };
  Prepend prepend = Prepend::kNever;
  // Pre-tokeniser Sequence[WhitespaceSplit, Metaspace] instead of a bare Metaspace.
  bool whitespace_split = false;
  // Normaliser steps, applied in order.
  struct NormStep {
    enum class Kind { kPrecompiled, kStrip, kReplaceLiteral, kReplaceSpaceRuns };
    Kind kind = Kind::kPrecompiled;
    bool left = false, right = false;  // kStrip
    std::string pattern;               // kReplaceLiteral
    std::string content;               // kReplaceLiteral / kReplaceSpaceRuns (regex " {2,}")
  };
  std::vector<NormStep> normalizer;

  // T5TokenizerFast(vocab_file=spiece.model) with transformers 4.56: Precompiled, Strip(right),
  // Replace(" {2,}", "▁"), prepend_scheme "never" (T5TokenizerFast hands add_prefix_space=None to the
  // slow tokenizer it converts, which the converter reads as "no prefix space").
  static T5TokenizerOptions FromVocabFile();
  // Settings of a tokenizer.json (what T5TokenizerFast.from_pretrained uses when the directory has one,
  // e.g. FLUX's tokenizer_2/, whose Metaspace prepends "▁"). Unsupported components are an error.
  static StatusOr<T5TokenizerOptions> FromTokenizerJson(const std::string& tokenizer_json);
};

class T5Tokenizer {
 public:
  static constexpr int kNumExtraIds = 100;

  // If a tokenizer.json lies next to spiece_model, its normaliser / Metaspace settings are used (as
  // T5TokenizerFast.from_pretrained(dir) would); otherwise T5TokenizerOptions::FromVocabFile().
  static StatusOr<std::unique_ptr<T5Tokenizer>> Load(const std::string& spiece_model);
  static StatusOr<std::unique_ptr<T5Tokenizer>> Load(const std::string& spiece_model,
                                                     const T5TokenizerOptions& options);

  // Token ids, EOS, padding: exactly max_length ids for max_length >= 1.
  std::vector<int64_t> Encode(const std::string& text, int max_length) const;

  // Token ids of the text alone (no EOS, no truncation or padding).
  std::vector<int64_t> Tokenize(const std::string& text) const;

  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unigram_.unk_id(); }
  // sentencepiece pieces + extra ids (len(tokenizer) of T5TokenizerFast).
  int64_t vocab_size() const { return static_cast<int64_t>(unigram_.size()); }

 private:
  T5Tokenizer() = default;
  std::string Normalize(const std::string& segment) const;
  void EncodeSegment(const std::string& segment, bool at_text_start, std::vector<int64_t>* out) const;
  void EncodeMetaspace(const std::string& normalized, bool at_text_start, std::vector<int64_t>* out) const;

  T5TokenizerOptions options_;
  UnigramModel unigram_;
  PrecompiledCharsmap charsmap_;
  int64_t eos_id_ = 1, pad_id_ = 0;

  // Added tokens (split before normalisation).
  std::vector<std::pair<std::string, int64_t>> added_;
  std::array<bool, 256> added_first_byte_{};
};

}  // namespace ditserve::text
