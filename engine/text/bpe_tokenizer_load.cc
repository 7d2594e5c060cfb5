// BpeTokenizer::Load: tokenizer.json + tokenizer_config.json / special_tokens_map.json -> BpeTokenizer.
// Every field that changes ids is either reproduced or refused with an error naming it.
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "engine/text/bpe_tokenizer.h"
#include "engine/text/tokenizer_json.h"

namespace ditserve::text {

using nlohmann::json;

// GPT-2's pre-tokenizer regex, used by ByteLevel(use_regex=true) (tokenizers' pre_tokenizers/byte_level.rs).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class BpeTokenizerLoader {
 public:
  explicit BpeTokenizerLoader(std::string dir) : dir_(std::move(dir)) {}

  StatusOr<std::unique_ptr<BpeTokenizer>> Load() {
    const std::string path = dir_ + "/tokenizer.json";
    ASSIGN_OR_RETURN(TokenizerJson tj, ReadTokenizerJson(path));
    path_ = path;
    tok_.reset(new BpeTokenizer());
    RETURN_IF_ERROR(LoadModel(&tj));
    RETURN_IF_ERROR(LoadAddedTokens(tj.doc.value("added_tokens", json::array())));
    if (!tj.doc.value("normalizer", json()).is_null()) {
      return Unsupported("normalizer", tj.doc["normalizer"], "null");
    }
    RETURN_IF_ERROR(LoadPreTokenizer(tj.doc.value("pre_tokenizer", json())));
    RETURN_IF_ERROR(LoadPostProcessor(tj.doc.value("post_processor", json())));
    RETURN_IF_ERROR(LoadConfig());
    tok_->added_ = AddedVocabulary(std::move(added_));
    return std::move(tok_);
  }

 private:
  Status Unsupported(const std::string& field, const json& value, const std::string& supported) const {
    std::string v = value.dump();
    if (v.size() > 300) v = v.substr(0, 300) + "...";
    return InvalidArgument(path_ + ": unsupported " + field + " " + v + " (supported: " + supported + ")");
  }

  Status LoadModel(TokenizerJson* tj) {
    const json& m = tj->doc.value("model", json());
    if (!m.is_object()) return InvalidArgument(path_ + ": no \"model\" object");
    if (m.value("type", "BPE") != "BPE") return Unsupported("model.type", m["type"], "\"BPE\"");
    if (!tj->has_vocab || !tj->has_merges) {
      return InvalidArgument(path_ + ": model needs a \"vocab\" object and a \"merges\" array");
    }
    const json dropout = m.value("dropout", json());
    if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
      return Unsupported("model.dropout", dropout, "null (dropout is random)");
    }
    for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json v = m.value(field, json());
      if (!v.is_null() && !(v.is_string() && v.get<std::string>().empty())) {
        return Unsupported(std::string("model.") + field, v, "null, as in byte-level BPE files");
      }
    }
    auto flag = [&](const char* field, bool* out) -> Status {
      const json v = m.value(field, json(false));
      if (!v.is_boolean()) return Unsupported(std::string("model.") + field, v, "true or false");
      *out = v.get<bool>();
      return Status::Ok();
    };
    RETURN_IF_ERROR(flag("ignore_merges", &tj->model.ignore_merges));
    RETURN_IF_ERROR(flag("byte_fallback", &tj->model.byte_fallback));
    RETURN_IF_ERROR(flag("fuse_unk", &tj->model.fuse_unk));
    const json unk = m.value("unk_token", json());
    if (unk.is_string()) {
      tj->model.unk_token = unk.get<std::string>();
    } else if (!unk.is_null()) {
      return Unsupported("model.unk_token", unk, "a string or null");
    }
    auto model = BpeModel::Build(std::move(tj->model));
    if (!model.ok()) return InvalidArgument(path_ + ": " + model.status().message());
    tok_->model_ = std::move(*model);
    model_vocab_size_ = static_cast<int64_t>(tok_->model_->vocab_size());
    return Status::Ok();
  }

  Status LoadAddedTokens(const json& list) {
    if (!list.is_array()) return Unsupported("added_tokens", list, "an array");
    std::set<int64_t> extra_ids;  // ids outside the model vocabulary
    for (const json& t : list) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
          !t["id"].is_number_integer()) {
        return Unsupported("added_tokens entry", t, "{\"id\": int, \"content\": string, ...}");
      }
      AddedToken a;
      a.content = t["content"].get<std::string>();
      a.id = t["id"].get<int64_t>();
      const bool special = t.value("special", false);
      a.special = special;
      a.single_word = t.value("single_word", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.normalized = t.value("normalized", !special);  // tokenizers' AddedToken default
      if (a.content.empty()) continue;
      if (utf8::FindInvalid(a.content) != std::string_view::npos) {
        return Unsupported("added_tokens entry", t, "UTF-8 content");
      }
      if (!tok_->model_->TokenToId(a.content)) extra_ids.insert(a.id);
      added_.push_back(std::move(a));
    }
    tok_->vocab_size_ = model_vocab_size_ + static_cast<int64_t>(extra_ids.size());
    return Status::Ok();
  }

  Status LoadByteLevel(const json& p, bool last) {
    if (!last) return Unsupported("pre_tokenizer", p, "ByteLevel as the last step");
    BpeTokenizer::PreStep step;
    step.byte_level = true;
    step.add_prefix_space = p.value("add_prefix_space", true);
    step.use_regex = p.value("use_regex", true);
    if (step.use_regex && !tok_->gpt2_regex_) {
      ASSIGN_OR_RETURN(OnigRegex re, OnigRegex::Compile(kGpt2Regex, /*literal=*/false));
      tok_->gpt2_regex_ = std::move(re);
    }
    tok_->pre_steps_.push_back(std::move(step));
    return Status::Ok();
  }

  Status LoadSplit(const json& p) {
    const char* kSupported = "Split with a Regex or String pattern, behavior Isolated, invert false";
    if (p.value("behavior", "") != "Isolated" || p.value("invert", false)) {
      return Unsupported("pre_tokenizer", p, kSupported);
    }
    const json pattern = p.value("pattern", json());
    bool literal = false;
    std::string text;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      text = pattern["Regex"].get<std::string>();
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      text = pattern["String"].get<std::string>();
      literal = true;
    } else {
      return Unsupported("pre_tokenizer", p, kSupported);
    }
    auto re = OnigRegex::Compile(text, literal);
    if (!re.ok()) return InvalidArgument(path_ + ": pre_tokenizer Split: " + re.status().message());
    BpeTokenizer::PreStep step;
    step.split = std::move(*re);
    tok_->pre_steps_.push_back(std::move(step));
    return Status::Ok();
  }

  Status LoadPreTokenizer(const json& p) {
    const char* kSupported = "ByteLevel, or Sequence[Split..., ByteLevel] (byte-level BPE)";
    std::vector<json> steps;
    if (p.is_object() && p.value("type", "") == "Sequence" && p.contains("pretokenizers") &&
        p["pretokenizers"].is_array()) {
      for (const json& s : p["pretokenizers"]) steps.push_back(s);
    } else if (p.is_object()) {
      steps.push_back(p);
      top_level_byte_level_ = p.value("type", "") == "ByteLevel";
    } else {
      return Unsupported("pre_tokenizer", p, kSupported);
    }
    for (size_t i = 0; i < steps.size(); ++i) {
      const json& s = steps[i];
      const std::string type = s.is_object() ? s.value("type", "") : "";
      if (type == "ByteLevel") {
        RETURN_IF_ERROR(LoadByteLevel(s, i + 1 == steps.size()));
      } else if (type == "Split") {
        RETURN_IF_ERROR(LoadSplit(s));
      } else {
        return Unsupported("pre_tokenizer", s, kSupported);
      }
    }
    if (tok_->pre_steps_.empty() || !tok_->pre_steps_.back().byte_level) {
      return Unsupported("pre_tokenizer", p, kSupported);
    }
    return Status::Ok();
  }

  // TemplateProcessing "single": [{"SpecialToken": {"id": name}}, {"Sequence": {"id": "A"}}, ...].
  Status LoadTemplate(const json& p) {
    const char* kSupported = "TemplateProcessing whose single template has one Sequence A";
    const json single = p.value("single", json());
    const json specials = p.value("special_tokens", json::object());
    if (!single.is_array() || !specials.is_object()) return Unsupported("post_processor", p, kSupported);
    bool seen_sequence = false;
    for (const json& item : single) {
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_sequence || item["Sequence"].value("id", "") != "A") {
          return Unsupported("post_processor", p, kSupported);
        }
        seen_sequence = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", "");
        const json& st = specials.contains(name) ? specials[name] : json();
        if (!st.is_object() || !st.contains("ids") || !st["ids"].is_array()) {
          return InvalidArgument(path_ + ": post_processor special token \"" + name +
                                 "\" is missing from special_tokens");
        }
        for (const json& id : st["ids"]) {
          if (!id.is_number_integer()) return Unsupported("post_processor", p, kSupported);
          (seen_sequence ? tok_->suffix_ : tok_->prefix_).push_back(id.get<int64_t>());
        }
      } else {
        return Unsupported("post_processor", p, kSupported);
      }
    }
    if (!seen_sequence) return Unsupported("post_processor", p, kSupported);
    return Status::Ok();
  }

  Status LoadPostProcessor(const json& p) {
    const char* kSupported = "null, ByteLevel, TemplateProcessing, or a Sequence of them";
    if (p.is_null()) return Status::Ok();
    std::vector<json> procs;
    if (p.is_object() && p.value("type", "") == "Sequence" && p.contains("processors") &&
        p["processors"].is_array()) {
      for (const json& s : p["processors"]) procs.push_back(s);
    } else {
      procs.push_back(p);
    }
    bool templated = false;
    for (const json& s : procs) {
      const std::string type = s.is_object() ? s.value("type", "") : "";
      if (type == "ByteLevel") continue;  // offsets only
      if (type != "TemplateProcessing" || templated) return Unsupported("post_processor", p, kSupported);
      templated = true;
      RETURN_IF_ERROR(LoadTemplate(s));
    }
    return Status::Ok();
  }

  // Optional small JSON file of dir_; null when absent.
  StatusOr<json> ReadOptional(const std::string& name) const {
    const std::string path = dir_ + "/" + name;
    std::ifstream in(path, std::ios::binary);
    if (!in) return json();
    std::ostringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument(path + ": not a JSON object");
    return j;
  }

  // A special token entry of the config files: "content" or {"content": ...}; empty when null.
  static std::string TokenContent(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return "";
  }

  const AddedToken* FindAdded(const std::string& content) const {
    for (const AddedToken& a : added_) {
      if (a.content == content) return &a;
    }
    return nullptr;
  }

  // Id of a special token of the config files: an added token, else a model token.
  StatusOr<int64_t> RequireId(const std::string& field, const std::string& token) const {
    if (const AddedToken* a = FindAdded(token)) return a->id;
    if (const auto id = tok_->model_->TokenToId(token)) return *id;
    return InvalidArgument(dir_ + "/tokenizer_config.json: " + field + " \"" + token +
                           "\" is not in tokenizer.json (transformers would add it as a new token): unsupported");
  }

  StatusOr<BpeTokenizer::Side> ParseSide(const json& cfg, const char* field, BpeTokenizer::Side dflt) const {
    if (!cfg.contains(field) || cfg[field].is_null()) return dflt;
    const json& v = cfg[field];
    if (v == "left") return BpeTokenizer::Side::kLeft;
    if (v == "right") return BpeTokenizer::Side::kRight;
    return InvalidArgument(dir_ + "/tokenizer_config.json: " + field + " " + v.dump() +
                           " (allowed: \"left\", \"right\")");
  }

  Status LoadConfig() {
    ASSIGN_OR_RETURN(json cfg, ReadOptional("tokenizer_config.json"));
    ASSIGN_OR_RETURN(json map, ReadOptional("special_tokens_map.json"));
    if (cfg.is_null()) cfg = json::object();
    // special_tokens_map.json overrides the config's entries (PreTrainedTokenizerBase._from_pretrained).
    json specials = cfg;
    if (map.is_object()) {
      for (auto it = map.begin(); it != map.end(); ++it) specials[it.key()] = it.value();
    }
    const std::string cls = cfg.value("tokenizer_class", "");
    const bool llama = cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast";
    if (llama) {  // LlamaTokenizerFast.__init__'s defaults
      for (const auto& [field, dflt] : {std::pair{"unk_token", "<unk>"}, std::pair{"bos_token", "<s>"},
                                        std::pair{"eos_token", "</s>"}}) {
        if (!specials.contains(field)) specials[field] = dflt;
      }
    }
    using Side = BpeTokenizer::Side;
    ASSIGN_OR_RETURN(tok_->padding_side_, ParseSide(cfg, "padding_side", llama ? Side::kLeft : Side::kRight));
    ASSIGN_OR_RETURN(tok_->truncation_side_, ParseSide(cfg, "truncation_side", Side::kRight));

    // PreTrainedTokenizerFast.__init__: config added tokens that differ from tokenizer.json's are re-added
    // (with other flags or as new added tokens): refused. Special tokens that are not added tokens yet
    // are added (AddedToken(special=True): not normalized, no strip), so they then split the text.
    const json decoder = cfg.value("added_tokens_decoder", json::object());
    if (!decoder.is_object()) return InvalidArgument(dir_ + "/tokenizer_config.json: added_tokens_decoder is not an object");
    for (auto it = decoder.begin(); it != decoder.end(); ++it) {
      const json& e = it.value();
      const AddedToken* a = FindAdded(TokenContent(e));
      if (a == nullptr || std::to_string(a->id) != it.key() || e.value("lstrip", false) != a->lstrip ||
          e.value("rstrip", false) != a->rstrip || e.value("single_word", false) != a->single_word ||
          e.value("normalized", true) != a->normalized || e.value("special", false) != a->special) {
        return InvalidArgument(dir_ + "/tokenizer_config.json: added_tokens_decoder[" + it.key() + "] " + e.dump() +
                               " differs from tokenizer.json's added_tokens (transformers would re-add it): unsupported");
      }
    }
    std::vector<std::string> special_tokens;
    for (const char* field : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                              "mask_token"}) {
      const std::string token = TokenContent(specials.value(field, json()));
      if (token.empty()) continue;
      special_tokens.push_back(token);
      ASSIGN_OR_RETURN(const int64_t id, RequireId(field, token));
      if (std::string(field) == "pad_token") tok_->pad_id_ = id;
    }
    for (const json& t : specials.value("additional_special_tokens", json::array())) {
      const std::string token = TokenContent(t);
      if (token.empty()) continue;
      special_tokens.push_back(token);
      RETURN_IF_ERROR(RequireId("additional_special_tokens", token).status());
    }
    for (const std::string& token : special_tokens) {
      if (FindAdded(token) != nullptr) continue;
      AddedToken a;
      a.content = token;
      a.id = *tok_->model_->TokenToId(token);  // RequireId: not added, so in the model vocabulary
      a.special = true;
      added_.push_back(std::move(a));
    }

    // PreTrainedTokenizerFast.__init__ replaces a bare ByteLevel pre-tokenizer's add_prefix_space with the
    // config's (False when absent; a null leaves it as it is). LlamaTokenizerFast with add_prefix_space
    // converts from the slow (sentencepiece) tokenizer instead: not a byte-level tokenizer.json any more.
    const json prefix = cfg.value("add_prefix_space", json());
    if (llama && !prefix.is_null()) {
      return InvalidArgument(dir_ + "/tokenizer_config.json: add_prefix_space with LlamaTokenizer (transformers "
                             "converts from the slow tokenizer then): unsupported");
    }
    if (top_level_byte_level_ && (prefix.is_boolean() || !cfg.contains("add_prefix_space"))) {
      tok_->pre_steps_.back().add_prefix_space = prefix.is_boolean() && prefix.get<bool>();
    }

    // LlamaTokenizerFast.update_post_processor(): "<bos>:0 $A:0 <eos>:0" per add_bos_token / add_eos_token.
    if (llama) {
      tok_->prefix_.clear();
      tok_->suffix_.clear();
      const json add_bos = cfg.value("add_bos_token", json(true));
      const json add_eos = cfg.value("add_eos_token", json(false));
      if (!add_bos.is_boolean() || !add_eos.is_boolean()) {
        return InvalidArgument(dir_ + "/tokenizer_config.json: add_bos_token / add_eos_token must be true or false");
      }
      for (const auto& [enabled, field, out] : {std::tuple{add_bos.get<bool>(), "bos_token", &tok_->prefix_},
                                                std::tuple{add_eos.get<bool>(), "eos_token", &tok_->suffix_}}) {
        if (!enabled) continue;
        const std::string token = TokenContent(specials.value(field, json()));
        if (token.empty()) {
          return InvalidArgument(dir_ + "/tokenizer_config.json: add_" + std::string(field).substr(0, 3) +
                                 "_token is true but " + field + " is not set");
        }
        ASSIGN_OR_RETURN(const int64_t id, RequireId(field, token));
        out->push_back(id);
      }
    }
    return Status::Ok();
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<BpeTokenizer> tok_;
  std::vector<AddedToken> added_;
  bool top_level_byte_level_ = false;  // pre_tokenizer is a bare ByteLevel (not in a Sequence)
  int64_t model_vocab_size_ = 0;
};

StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Load(const std::string& dir) {
  return BpeTokenizerLoader(dir).Load();
}

}  // namespace ditserve::text
