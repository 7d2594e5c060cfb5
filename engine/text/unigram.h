// Unigram language-model segmentation, as the `tokenizers` Unigram model does it
// (Unigram::encode_optimized + fuse_unk): Viterbi over byte positions that start UTF-8 characters, each
// edge a vocabulary string scored by its log probability; a character that no vocabulary string of
// exactly its length covers gets an <unk> edge scored min_score - 10 (SentencePiece's kUnkPenalty);
// consecutive <unk> tokens are fused into one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ditserve::text {

class UnigramModel {
 public:
  struct Entry {
    std::string token;
    double score = 0.0;
  };
  UnigramModel() = default;
  // entries are indexed by id; for duplicate strings the last id wins (tokenizers' token_to_ids).
  UnigramModel(std::vector<Entry> entries, int64_t unk_id);

  // Appends the ids of one pre-tokenised word.
  void Encode(std::string_view word, std::vector<int64_t>* out) const;

  // -1 when absent.
  int64_t IdOf(std::string_view token) const;
  size_t size() const { return scores_.size(); }
  int64_t unk_id() const { return unk_id_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<double> scores_;
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> token_to_id_;
  std::vector<bool> first_byte_;   // some token starts with this byte
  size_t max_token_bytes_ = 0;
  double min_score_ = 0.0;
  int64_t unk_id_ = 0;
};

}  // namespace ditserve::text
