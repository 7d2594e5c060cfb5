#include "engine/text/tokenizer_json.h"

#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

namespace ditserve::text {
namespace {

using nlohmann::json;

// Builds the DOM of everything but the contents of model.vocab and model.merges, which go to `out`.
class Sax final : public nlohmann::json_sax<json> {
 public:
  explicit Sax(TokenizerJson* out) : out_(out) {}
  const std::string& error() const { return error_; }

  bool null() override { return Value(json()); }
  bool boolean(bool v) override { return Value(json(v)); }
  bool number_integer(number_integer_t v) override { return Integer(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return v > static_cast<number_unsigned_t>(INT64_MAX) ? Integer(-1) : Integer(static_cast<int64_t>(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    if (mode_ != Mode::kDom) return Fail("a number that is not an integer");
    return Value(json(v));
  }
  bool binary(binary_t&) override { return Fail("binary value"); }

  bool string(string_t& v) override {
    switch (mode_) {
      case Mode::kDom: return Value(json(std::move(v)));
      case Mode::kVocab: return Fail("vocab value \"" + v + "\" is not an integer");
      case Mode::kMerges: {  // "a b": exactly one space, like tokenizers' legacy merges
        const size_t sp = v.find(' ');
        if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos) {
          return Fail("merges[" + std::to_string(out_->model.merges.size()) + "] \"" + v +
                      "\" is not two tokens separated by one space");
        }
        const std::string_view sv = v;
        out_->model.AddMerge(sv.substr(0, sp), sv.substr(sp + 1));
        return true;
      }
      case Mode::kMergePair:  // the two strings go straight into merge_text
        if (pair_count_ == 2) return Fail("a merge pair with more than 2 tokens");
        if (pair_count_ == 0) pair_left_ = static_cast<uint32_t>(v.size());
        out_->model.merge_text.append(v);
        ++pair_count_;
        return true;
    }
    return false;
  }

  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }

  bool start_object(std::size_t) override {
    if (mode_ != Mode::kDom) return Fail("an object inside vocab or merges");
    const bool vocab = InModel() && key_ == "vocab";
    Push(json::object());
    if (vocab) {
      mode_ = Mode::kVocab;
      out_->has_vocab = true;
      out_->model.vocab.reserve(1 << 17);
      out_->model.vocab_text.reserve(1 << 21);
    }
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) mode_ = Mode::kDom;
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t) override {
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kMergePair;
      pair_count_ = 0;
      pair_offset_ = static_cast<uint32_t>(out_->model.merge_text.size());
      return true;
    }
    if (mode_ != Mode::kDom) return Fail("nested arrays inside vocab or merges");
    const bool merges = InModel() && key_ == "merges";
    Push(json::array());
    if (merges) {
      mode_ = Mode::kMerges;
      out_->has_merges = true;
      out_->model.merges.reserve(1 << 19);
      out_->model.merge_text.reserve(1 << 22);
    }
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::kMergePair) {
      if (pair_count_ != 2) {
        return Fail("merges[" + std::to_string(out_->model.merges.size()) + "] is not a pair of tokens");
      }
      const auto total = static_cast<uint32_t>(out_->model.merge_text.size()) - pair_offset_;
      out_->model.merges.push_back({pair_offset_, pair_left_, total - pair_left_});
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) mode_ = Mode::kDom;
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = "invalid JSON at byte " + std::to_string(position) + ": " + e.what();
    return false;
  }

 private:
  enum class Mode { kDom, kVocab, kMerges, kMergePair };

  // Directly inside the top-level "model" object.
  bool InModel() const { return stack_.size() == 2 && in_model_; }

  bool Integer(int64_t v) {
    if (mode_ == Mode::kDom) return Value(json(v));
    if (mode_ != Mode::kVocab) return Fail("a number inside merges");
    if (v < 0 || v > INT32_MAX) return Fail("vocab id " + std::to_string(v) + " of \"" + key_ + "\" is out of range");
    out_->model.AddToken(key_, static_cast<int32_t>(v));
    return true;
  }

  bool Value(json v) {
    if (mode_ != Mode::kDom) return Fail("a value that is not a token or an id inside vocab or merges");
    Add(std::move(v));
    return true;
  }

  json* Add(json v) {
    if (stack_.empty()) {
      out_->doc = std::move(v);
      return &out_->doc;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    json& slot = (*top)[key_];
    slot = std::move(v);
    return &slot;
  }

  void Push(json v) {
    if (stack_.size() == 1) in_model_ = key_ == "model";
    stack_.push_back(Add(std::move(v)));
  }

  bool Fail(const std::string& what) {
    error_ = "model." + std::string(mode_ == Mode::kVocab ? "vocab" : "merges") + ": " + what;
    return false;
  }

  TokenizerJson* out_;
  std::vector<json*> stack_;
  std::string key_;
  int pair_count_ = 0;        // strings seen in the current merge pair
  uint32_t pair_offset_ = 0;  // where the pair starts in merge_text
  uint32_t pair_left_ = 0;    // length of its first string
  Mode mode_ = Mode::kDom;
  bool in_model_ = false;
  std::string error_;
};

}  // namespace

StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) return NotFound("cannot open " + path);
  std::string text;
  if (std::fseek(f.get(), 0, SEEK_END) == 0) {
    const long size = std::ftell(f.get());
    if (size > 0) text.reserve(static_cast<size_t>(size));
    std::rewind(f.get());
  }
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) text.append(buf, n);
  if (std::ferror(f.get())) return Internal("cannot read " + path);

  TokenizerJson out;
  Sax sax(&out);
  if (!json::sax_parse(text, &sax)) {
    return InvalidArgument(path + ": " + (sax.error().empty() ? "invalid JSON" : sax.error()));
  }
  if (!out.doc.is_object()) return InvalidArgument(path + ": not a JSON object");
  return out;
}

}  // namespace ditserve::text
