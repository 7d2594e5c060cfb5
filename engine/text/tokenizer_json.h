// Reads an HF tokenizer.json fast. A Llama-3 file is ~9-17 MB, almost all of it the BPE vocabulary (128k
// entries) and merges (280k pairs); building a JSON DOM of those alone costs more than the rest of the
// tokenizer's start-up. A SAX pass stores them straight into a BpeModelSpec and keeps everything else
// (small) as a JSON document, where model.vocab / model.merges are left empty.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ditserve/status.h"
#include "engine/text/bpe_model.h"

namespace ditserve::text {

struct TokenizerJson {
  nlohmann::json doc;       // the file without model.vocab / model.merges entries
  BpeModelSpec model;       // vocab and merges only; the other model fields are in doc["model"]
  bool has_vocab = false;   // model.vocab was an object
  bool has_merges = false;  // model.merges was an array
};

// Both merges layouts are accepted: ["a b", ...] (tokenizers < 0.20) and [["a", "b"], ...].
StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path);

}  // namespace ditserve::text
