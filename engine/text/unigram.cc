#include "engine/text/unigram.h"

#include <algorithm>
#include <limits>

#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {
constexpr double kUnkPenalty = 10.0;  // sentencepiece / tokenizers K_UNK_PENALTY
}  // namespace

UnigramModel::UnigramModel(std::vector<Entry> entries, int64_t unk_id)
    : first_byte_(256, false), unk_id_(unk_id) {
  scores_.reserve(entries.size());
  token_to_id_.reserve(entries.size());
  min_score_ = std::numeric_limits<double>::infinity();
  for (size_t id = 0; id < entries.size(); ++id) {
    Entry& e = entries[id];
    scores_.push_back(e.score);
    min_score_ = std::min(min_score_, e.score);
    max_token_bytes_ = std::max(max_token_bytes_, e.token.size());
    if (!e.token.empty()) first_byte_[static_cast<unsigned char>(e.token[0])] = true;
    token_to_id_[std::move(e.token)] = static_cast<int64_t>(id);
  }
  if (entries.empty()) min_score_ = 0.0;
}

int64_t UnigramModel::IdOf(std::string_view token) const {
  const auto it = token_to_id_.find(token);
  return it == token_to_id_.end() ? -1 : it->second;
}

void UnigramModel::Encode(std::string_view word, std::vector<int64_t>* out) const {
  const size_t size = word.size();
  if (size == 0) return;
  // best[i]: best path ending at byte i (the token it ends with, its score and where it starts).
  struct Node {
    int64_t id = 0;
    double score = 0.0;
    int64_t starts_at = -1;  // -1: not reached yet
  };
  std::vector<Node> best(size + 1);
  const double unk_score = min_score_ - kUnkPenalty;
  auto relax = [&](size_t end, size_t start, int64_t id, double score) {
    Node& n = best[end];
    if (n.starts_at < 0 || score > n.score) {
      n.score = score;
      n.starts_at = static_cast<int64_t>(start);
      n.id = id;
    }
  };
  for (size_t start = 0; start < size;) {
    const double base = best[start].score;
    const size_t char_len = utf8::StepLen(word, start);
    bool covers_char = false;
    if (first_byte_[static_cast<unsigned char>(word[start])]) {
      const size_t max_len = std::min(max_token_bytes_, size - start);
      for (size_t len = 1; len <= max_len; ++len) {  // every vocabulary prefix, shortest first
        const int64_t id = IdOf(word.substr(start, len));
        if (id < 0) continue;
        relax(start + len, start, id, base + scores_[static_cast<size_t>(id)]);
        if (len == char_len) covers_char = true;
      }
    }
    if (!covers_char) relax(start + char_len, start, unk_id_, base + unk_score);
    start += char_len;
  }

  // Backtrack to token strings, fusing runs of <unk> pieces into one string.
  std::vector<std::string_view> tokens;  // reversed
  size_t unk_begin = 0, unk_end = 0;     // current fused <unk> span [unk_begin, unk_end)
  bool in_unk = false;
  for (size_t end = size; end > 0;) {
    const Node& node = best[end];
    const auto start = static_cast<size_t>(node.starts_at);
    if (node.id == unk_id_) {
      if (!in_unk) unk_end = end;
      in_unk = true;
      unk_begin = start;
    } else {
      if (in_unk) tokens.push_back(word.substr(unk_begin, unk_end - unk_begin));
      in_unk = false;
      tokens.push_back(word.substr(start, end - start));
    }
    end = start;
  }
  if (in_unk) tokens.push_back(word.substr(unk_begin, unk_end - unk_begin));
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
    const int64_t id = IdOf(*it);
    out->push_back(id < 0 ? unk_id_ : id);
  }
}

}  // namespace ditserve::text
