#include "engine/text/bpe_tokenizer.h"

#include <algorithm>
#include <utility>

#include "engine/text/utf8.h"

namespace ditserve::text {
namespace {

// Split with behavior Isolated: the matches and the text between them, each its own piece; empty pieces
// are dropped (tokenizers' PreTokenizedString::split).
Status SplitIsolated(const OnigRegex& re, const std::string& piece, std::vector<std::string>* out) {
  std::vector<std::pair<size_t, size_t>> matches;
  RETURN_IF_ERROR(re.FindAll(piece, &matches));
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) out->push_back(piece.substr(prev, b - prev));
    out->push_back(piece.substr(b, e - b));
    prev = e;
  }
  if (prev < piece.size()) out->push_back(piece.substr(prev));
  return Status::Ok();
}

}  // namespace

std::optional<int64_t> BpeTokenizer::TokenToId(std::string_view token) const {
  const int64_t added = added_.IdOf(token);
  if (added >= 0) return added;
  if (const auto id = model_->TokenToId(token)) return *id;
  return std::nullopt;
}

Status BpeTokenizer::EncodePlain(std::string_view text, std::vector<int64_t>* out) const {
  std::vector<std::string> pieces{std::string(text)};
  std::vector<std::string> next;
  for (const PreStep& step : pre_steps_) {
    next.clear();
    for (std::string& piece : pieces) {
      if (step.split) {
        RETURN_IF_ERROR(SplitIsolated(*step.split, piece, &next));
        continue;
      }
      // ByteLevel: the prefix space goes on every piece of the previous steps.
      if (step.add_prefix_space && piece.front() != ' ') piece.insert(piece.begin(), ' ');
      if (step.use_regex) {
        RETURN_IF_ERROR(SplitIsolated(*gpt2_regex_, piece, &next));
      } else {
        next.push_back(std::move(piece));
      }
    }
    pieces.swap(next);
  }
  std::string mapped;
  for (const std::string& piece : pieces) {
    mapped.clear();
    alphabet_.Map(piece, &mapped);
    model_->Tokenize(mapped, out);
  }
  return Status::Ok();
}

StatusOr<std::vector<int64_t>> BpeTokenizer::Tokenize(std::string_view text, bool add_special_tokens) const {
  if (const size_t bad = utf8::FindInvalid(text); bad != std::string_view::npos) {
    return InvalidArgument("text is not valid UTF-8 (byte " + std::to_string(bad) + " of " +
                           std::to_string(text.size()) + ")");
  }
  std::vector<int64_t> ids;
  if (add_special_tokens) ids = prefix_;
  for (const AddedVocabulary::Piece& p : added_.Split(text)) {
    if (p.id >= 0) {
      ids.push_back(p.id);
    } else {
      RETURN_IF_ERROR(EncodePlain(text.substr(p.begin, p.end - p.begin), &ids));
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

StatusOr<BpeTokenizer::Encoding> BpeTokenizer::Encode(std::string_view text, int max_length) const {
  if (max_length < num_special_tokens() || max_length <= 0) {
    return InvalidArgument("max_length " + std::to_string(max_length) + " must be at least 1 and at least the " +
                           std::to_string(num_special_tokens()) + " special tokens the tokenizer adds");
  }
  if (pad_id_ < 0) return InvalidArgument("the tokenizer has no pad token: cannot pad to max_length");
  ASSIGN_OR_RETURN(std::vector<int64_t> content, Tokenize(text, /*add_special_tokens=*/false));

  // Truncate the text's ids so that they and the special tokens fit max_length.
  const size_t limit = static_cast<size_t>(max_length - num_special_tokens());
  if (content.size() > limit) {
    if (truncation_side_ == Side::kRight) {
      content.resize(limit);
    } else {
      content.erase(content.begin(), content.end() - static_cast<std::ptrdiff_t>(limit));
    }
  }
  Encoding enc;
  enc.input_ids.reserve(static_cast<size_t>(max_length));
  enc.input_ids.insert(enc.input_ids.end(), prefix_.begin(), prefix_.end());
  enc.input_ids.insert(enc.input_ids.end(), content.begin(), content.end());
  enc.input_ids.insert(enc.input_ids.end(), suffix_.begin(), suffix_.end());
  enc.attention_mask.assign(enc.input_ids.size(), 1);

  const size_t pad = static_cast<size_t>(max_length) - enc.input_ids.size();
  const auto at_ids = padding_side_ == Side::kRight ? enc.input_ids.end() : enc.input_ids.begin();
  enc.input_ids.insert(at_ids, pad, pad_id_);
  const auto at_mask = padding_side_ == Side::kRight ? enc.attention_mask.end() : enc.attention_mask.begin();
  enc.attention_mask.insert(at_mask, pad, 0);
  return enc;
}

}  // namespace ditserve::text
