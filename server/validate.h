// Request validation before queueing: every rejection is INVALID_ARGUMENT naming the field and the
// allowed range. On success the request is resolved: defaults filled in and a seed chosen.
#pragma once

#include <map>
#include <string>

#include "ditserve/model_info.h"
#include "ditserve/status.h"
#include "ditserve/v1/ditserve.pb.h"

namespace ditserve::server {

constexpr size_t kMaxClientRequestIdChars = 128;

// `models` maps client-visible names to their info. An empty `model` picks the only model if there is
// exactly one. `random_seed` is used when the request has no seed.
StatusOr<v1::GenerateRequest> ValidateAndResolve(const v1::GenerateRequest& req,
                                                 const std::map<std::string, ModelInfo>& models,
                                                 uint64_t random_seed);

}  // namespace ditserve::server
