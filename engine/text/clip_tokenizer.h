// CLIP byte-level BPE tokenizer: a C++ port of the *slow* `transformers.CLIPTokenizer` that
// diffusers' FluxPipeline uses for its first text encoder.
//
//   ClipTokenizer::Encode(text, L) == CLIPTokenizer(vocab.json, merges.txt)(
//       text, padding="max_length", max_length=L, truncation=True).input_ids
//
// Pipeline reproduced (transformers 4.56, the version pinned in .venv):
//  1. Added-token split: literal "<|startoftext|>" / "<|endoftext|>" in the text become BOS/EOS ids
//     (AddedToken lstrip=rstrip=False, so the neighbouring text is not stripped).
//  2. Text clean-up for each remaining chunk. CLIPTokenizer uses `ftfy.fix_text` when ftfy is importable
//     and otherwise `BasicTokenizer(strip_accents=False, do_split_on_punc=False)`. The pinned .venv has no
//     ftfy (scripts/requirements.txt does not list it), so FluxPipeline runs the BasicTokenizer path and
//     so do we: drop NUL/U+FFFD/category-C characters (except \t\n\r), map \t\n\r and Zs to ' ', pad CJK
//     ideographs with spaces, NFC, split on whitespace (str.split()), lower-case every word with full
//     Unicode case mapping (str.lower(), incl. final sigma), re-join with single spaces.
//     NOTE: with ftfy installed the Python tokenizer would use a different clean-up (ftfy.fix_text), so
//     keep ftfy out of the reference venv or revisit this.
//  3. CLIP's pre-tokenisation regex (`regex` module, IGNORECASE):
//       <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//  4. Byte-level BPE (bytes_to_unicode alphabet, "</w>" end-of-word marker, merge ranks from merges.txt,
//     of which at most the first 48894 are used, like CLIPTokenizer) with a per-word cache.
//  5. [BOS] ids [EOS], ids truncated from the right to max_length-2, right-padded with pad_id().
//     FLUX's tokenizer (and CLIPTokenizer's defaults) use "<|endoftext|>" for EOS, PAD and UNK.
//
// Unicode data comes from ICU (libicu-dev). Python 3.11's unicodedata is Unicode 14.0, so characters
// assigned after 14.0 are treated as unassigned (category Cn, removed) exactly as Python does.
// Thread-safe: Encode() may be called concurrently (the BPE cache is mutex-protected).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ditserve/status.h"
#include "engine/text/byte_level.h"

namespace ditserve::text {

class ClipTokenizer {
 public:
  // vocab_json / merges_txt: paths of CLIP's vocab.json and merges.txt.
  static StatusOr<std::unique_ptr<ClipTokenizer>> Load(const std::string& vocab_json,
                                                       const std::string& merges_txt);

  // BOS, tokens, EOS, padding: exactly max_length ids when max_length > 2. Like transformers, no
  // truncation happens for max_length <= 2 (it would have to drop every token).
  std::vector<int64_t> Encode(const std::string& text, int max_length) const;

  // Token ids of the text alone (no BOS/EOS, no truncation or padding).
  std::vector<int64_t> Tokenize(const std::string& text) const;

  int64_t pad_id() const { return pad_id_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  // len(vocab.json), like CLIPTokenizer.vocab_size.
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  ClipTokenizer() = default;
  int64_t TokenToId(const std::string& token) const;
  // BPE of one pre-token (raw UTF-8 bytes); appends ids.
  void Bpe(const std::string& word, std::vector<int64_t>* out) const;
  // Clean-up + regex + BPE of text that contains no added tokens.
  void TokenizeChunk(const std::u32string& chunk, std::vector<int64_t>* out) const;

  std::unordered_map<std::string, int64_t> vocab_;        // vocab.json
  std::unordered_map<std::string, int64_t> added_;        // special tokens -> id
  std::unordered_map<std::string, int> bpe_ranks_;        // "first second" -> rank
  ByteLevelAlphabet alphabet_;                             // byte -> its BPE character
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = 0;

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace ditserve::text
