// The ditserve-worker process body: parses the arguments the coordinator passes (server/worker_group.cc),
// serves the internal Worker service on its unix socket, loads the engine through `factory`, and runs
// until SIGTERM/SIGINT. Torch-free: the real worker passes Engine::Create, tests a fake engine.
#pragma once

#include <functional>
#include <memory>

#include "ditserve/engine.h"
#include "server/worker/exit_codes.h"

namespace ditserve::worker {

using EngineFactory = std::function<StatusOr<std::unique_ptr<Engine>>(const EngineOptions&)>;

// Returns the process exit code: 0 after a signal, else one of server/worker/exit_codes.h.
int RunWorker(int argc, char** argv, const EngineFactory& factory);

}  // namespace ditserve::worker
