// The public request as engine parameters: the coordinator validates exactly what the workers will run.
#pragma once

#include "ditserve/engine.h"
#include "ditserve/v1/ditserve.pb.h"

namespace ditserve::server {

// Converts a request whose defaults are filled in (ValidateAndResolve) into engine parameters.
GenerateParams ToParams(const v1::GenerateRequest& r);

}  // namespace ditserve::server
