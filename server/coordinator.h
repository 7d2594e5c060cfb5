// The coordinator: model catalogue, bounded request queue, worker groups, and the dispatcher thread
// that routes each queued job to an idle group of its model. Owned by the ditserve process.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "ditserve/model_info.h"
#include "server/api_keys.h"
#include "server/config.h"
#include "server/job.h"
#include "server/metrics.h"
#include "server/request_queue.h"
#include "server/runtime_dir.h"
#include "server/worker_group.h"

namespace ditserve::server {

// The metrics label of requests that name no model the server has (or could not be decoded): one shared
// label, so clients cannot add series.
inline constexpr char kInvalidModelLabel[] = "_invalid";

class Coordinator {
 public:
  // Reads every model's model.json (so bad paths fail at start) and starts the groups.
  // api_keys (may be null; must outlive the coordinator): /metrics then needs a key as the HTTP Basic
  // password, unless server.auth.metrics_open.
  static StatusOr<std::unique_ptr<Coordinator>> Create(ServerConfig config, std::string worker_binary,
                                                       const ApiKeys* api_keys = nullptr);
  ~Coordinator();

  // Validates and enqueues. INVALID_ARGUMENT / RESOURCE_EXHAUSTED / UNAVAILABLE (draining).
  StatusOr<std::shared_ptr<Job>> Submit(const v1::GenerateRequest& request);
  // Client went away or its deadline passed: drop the job from the queue or stop it on its group.
  void Cancel(const std::shared_ptr<Job>& job, Status reason);

  // The model label of `request` in metrics: its model (or the only model, when it names none) if the
  // server has it, else kInvalidModelLabel.
  std::string ModelLabel(const v1::GenerateRequest& request) const;

  v1::ListModelsResponse ListModels() const;
  v1::ServerStatus GetStatus() const;
  // Every model has a group that has been ready, or only FAILED groups; and some model is ready.
  bool AllModelsReady() const;
  bool AllGroupsFailed() const;  // nothing can ever be served

  void BeginDrain();                  // refuse new requests from now on
  bool WaitIdle(double timeout_s);    // queue empty and no group busy; false early after ForceStop
  void ForceStop();                   // a second signal: WaitIdle gives up now
  void Shutdown();                    // stop groups and their workers

  Metrics& metrics() { return *metrics_; }
  const ServerConfig& config() const { return config_; }

 private:
  Coordinator(ServerConfig config, std::unique_ptr<RuntimeDir> runtime_dir, std::unique_ptr<Metrics> metrics);
  void DispatchLoop();
  // OK if a group that can run `request` has not FAILED; else UNAVAILABLE with the groups' reasons.
  Status LiveGroupFor(const v1::GenerateRequest& request) const;
  void Notify();

  const std::unique_ptr<RuntimeDir> runtime_dir_;  // outlives the groups (declared before them)
  const ServerConfig config_;
  std::unique_ptr<Metrics> metrics_;
  std::map<std::string, ModelInfo> models_;
  RequestQueue queue_;
  std::vector<std::unique_ptr<WorkerGroup>> groups_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> draining_{false};
  std::atomic<bool> force_stop_{false};
  std::atomic<uint64_t> next_id_{1};
  std::mt19937_64 rng_{std::random_device{}()};
  std::mutex rng_mu_;
  std::thread dispatcher_;
};

}  // namespace ditserve::server
