// ditserve-worker: one process per rank of a worker group, spawned and supervised by the coordinator.
// Serves the internal Worker service on a unix socket, loads its model, runs jobs (worker_runner.h).
#include "ditserve/engine.h"
#include "server/worker/worker_runner.h"

int main(int argc, char** argv) { return ditserve::worker::RunWorker(argc, argv, &ditserve::Engine::Create); }
