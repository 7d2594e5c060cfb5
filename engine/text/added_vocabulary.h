// Added tokens of a tokenizer.json ("added_tokens": special tokens such as "<|eot_id|>" and user-added
// ones), split off the text before pre-tokenization exactly like HF tokenizers' AddedVocabulary:
//  - leftmost-longest matching (aho-corasick MatchKind::LeftmostLongest), non-overlapping;
//  - tokens with normalized=false match the raw text first; normalized=true ones then match the other
//    pieces (after the normalizer, which BpeTokenizer requires to be absent);
//  - single_word drops a match that touches a word character (Rust regex \w) on either side;
//  - lstrip / rstrip make the match swallow the whitespace (\s) before / after it.
// \w and \s use ICU's properties (the system ICU's Unicode version, not the Rust regex crate's): only
// tokens with these flags look at them, and Llama-3 / HunyuanVideo files have none.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ditserve::text {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

class AddedVocabulary {
 public:
  // One piece of the text: [begin, end) bytes, and the added token's id or -1 for plain text.
  struct Piece {
    size_t begin, end;
    int64_t id;
  };

  AddedVocabulary() = default;
  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  // Splits text (valid UTF-8) into added tokens and the text between them (never empty pieces).
  std::vector<Piece> Split(std::string_view text) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // Id of an added token with this exact content, or -1.
  int64_t IdOf(std::string_view content) const;

 private:
  // One matching pass (normalized=false or normalized=true tokens) over text[begin, end).
  void SplitPass(std::string_view text, size_t begin, size_t end, bool normalized,
                 std::vector<Piece>* out) const;

  std::vector<AddedToken> tokens_;
  // Per first byte and pass: indices into tokens_, longest content first.
  std::array<std::vector<int32_t>, 256> by_first_byte_[2];
};

}  // namespace ditserve::text
