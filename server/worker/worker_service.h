// The worker side of the control link: runs jobs on this rank's Engine, one at a time.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "ditserve/engine.h"
#include "ditserve/internal/worker.grpc.pb.h"

namespace ditserve::worker {

class WorkerService final : public internal::Worker::Service {
 public:
  // result_chunk_bytes: the leader streams its output in pieces of this size (server/result_stream.h).
  WorkerService(int rank, int world_size, uint32_t step_delay_ms, uint64_t result_chunk_bytes)
      : rank_(rank), world_size_(world_size), step_delay_ms_(step_delay_ms), result_chunk_bytes_(result_chunk_bytes) {}

  void SetEngine(std::unique_ptr<Engine> engine);  // marks the worker ready

  grpc::Status Run(grpc::ServerContext* ctx, const internal::Job* job,
                   grpc::ServerWriter<internal::JobEvent>* writer) override;
  grpc::Status Ping(grpc::ServerContext* ctx, const internal::PingRequest* req,
                    internal::PingResponse* resp) override;

 private:
  const int rank_;
  const int world_size_;
  const uint32_t step_delay_ms_;
  const uint64_t result_chunk_bytes_;
  std::unique_ptr<Engine> engine_;
  std::atomic<bool> ready_{false};
  std::mutex run_mu_;  // one job at a time: the engine is owned by whichever Run holds it
};

}  // namespace ditserve::worker
