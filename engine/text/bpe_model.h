// The BPE model of HF `tokenizers` (models/bpe, tokenizers 0.22), as used by byte-level tokenizer.json
// files (GPT-2, Llama-3): ids of one pre-token that the ByteLevel pre-tokenizer has already mapped to the
// byte-level alphabet.
//
//  - ignore_merges: a pre-token that is itself in the vocabulary is that one token, whatever the merges
//    would make of it (Llama-3 sets this: its merges were derived from tiktoken ranks).
//  - Otherwise every character is looked up alone; one that is not in the vocabulary becomes, in this
//    order: its UTF-8 bytes as "<0xXX>" tokens (byte_fallback, when all of them exist), the unk token
//    (consecutive ones fused into one with fuse_unk), or nothing at all (no unk token), like tokenizers.
//  - Then merges are applied lowest rank first, leftmost first on ties, each merge creating the pairs with
//    its neighbours (tokenizers' Word::merge_all with a min-heap of (rank, position)).
// Encodings are cached per pre-token; Tokenize() is const and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ditserve/status.h"
#include "engine/text/token_id_map.h"

namespace ditserve::text {

// The "model" section of a tokenizer.json of type BPE.
struct BpeModelSpec {
  // Vocabulary entries in file order (a repeated token keeps its last id): token i is the bytes
  // [vocab[i].offset, vocab[i].offset + vocab[i].length) of vocab_text.
  struct TokenRef {
    uint32_t offset, length;
    int32_t id;
  };
  std::vector<TokenRef> vocab;
  std::string vocab_text;
  // Merges in rank order: merge i is the strings [a, a + left) and [a + left, a + left + right) of
  // merge_text with a = merges[i].offset, so the merged token is the contiguous [a, a + left + right).
  struct MergeRef {
    uint32_t offset, left, right;
  };
  std::vector<MergeRef> merges;
  std::string merge_text;
  std::optional<std::string> unk_token;
  bool ignore_merges = false;
  bool byte_fallback = false;
  bool fuse_unk = false;

  void AddToken(std::string_view token, int32_t id) {
    vocab.push_back({static_cast<uint32_t>(vocab_text.size()), static_cast<uint32_t>(token.size()), id});
    vocab_text.append(token);
  }
  void AddMerge(std::string_view left, std::string_view right) {
    merges.push_back({static_cast<uint32_t>(merge_text.size()), static_cast<uint32_t>(left.size()),
                      static_cast<uint32_t>(right.size())});
    merge_text.append(left).append(right);
  }
};

class BpeModel {
 public:
  // Fails (naming the merge) when a merge's parts or result are not in the vocabulary, as tokenizers does.
  static StatusOr<std::unique_ptr<BpeModel>> Build(BpeModelSpec spec);

  // Appends the ids of one non-empty pre-token (UTF-8 over the byte-level alphabet).
  void Tokenize(std::string_view word, std::vector<int64_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  size_t vocab_size() const { return vocab_.size(); }
  size_t num_merges() const { return merges_.size(); }

 private:
  BpeModel() = default;
  std::vector<int32_t> MergeWord(std::string_view word) const;

  TokenIdMap vocab_;
  MergeMap merges_;
  std::optional<int32_t> unk_id_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;

  mutable std::mutex cache_mu_;
  // Keyed by pre-token; std::hash<std::string_view> probes it without building a std::string.
  struct CacheHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::unordered_map<std::string, std::vector<int32_t>, CacheHash, std::equal_to<>> cache_;
};

}  // namespace ditserve::text
