// fake_worker: the real ditserve-worker process (arguments, Worker service, result streaming, signals)
// around tests/support/fake_engine.h instead of the libtorch engine. Integration tests point
// server.worker_binary at it to serve videos and results above 4 MiB with no model.
#include "server/worker/worker_runner.h"
#include "support/fake_engine.h"

int main(int argc, char** argv) {
  return ditserve::worker::RunWorker(argc, argv, &ditserve::testing::FakeEngine::Create);
}
