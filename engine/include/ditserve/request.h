// The one request validator: the coordinator runs it before queueing a request and every rank's engine
// runs it again before generating, so the two can never disagree (a request the coordinator queued is never
// rejected by the ranks). Messages name the public API's field and its allowed values.
#pragma once

#include <cstdint>

#include "ditserve/engine.h"
#include "ditserve/model_info.h"
#include "ditserve/status.h"

namespace ditserve {

// Frame rates a video request may ask for (0 in a request means the model's default).
inline constexpr IntRange kFpsRange{1, 120, 1, 24};

// Every field of a resolved request (defaults already filled in) against the model's limits:
// INVALID_ARGUMENT naming the field and what is allowed, or OK.
Status ValidateParams(const ModelInfo& model, const GenerateParams& params);

// Whether the request runs classifier-free guidance by the model's rule (CfgRule), and that rule in words
// for errors ("true_cfg_scale > 1 and a non-empty negative_prompt").
bool UsesCfg(const ModelInfo& model, const GenerateParams& params);
const char* CfgRuleText(CfgRule rule);

// Characters as the API counts them: Unicode code points of UTF-8 text (each invalid byte counts as one).
size_t CountChars(const std::string& utf8);

}  // namespace ditserve
