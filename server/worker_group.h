// One worker group: the processes of its ranks and the single owner thread that starts them, runs
// one job at a time on all ranks, and restarts the whole group when any rank dies (a c10d group cannot
// continue without one of its ranks).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ditserve/model_info.h"
#include "ditserve/v1/ditserve.pb.h"
#include "ditserve/internal/worker.grpc.pb.h"
#include "server/config.h"
#include "server/job.h"
#include "server/metrics.h"
#include "server/worker_process.h"

namespace ditserve::server {

class WorkerGroup {
 public:
  WorkerGroup(GroupConfig group, ModelConfig model, ModelInfo info, const ServerConfig& server, std::string worker_binary,
              Metrics& metrics, std::function<void()> on_idle);
  ~WorkerGroup();
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  void Start();
  void Stop();  // stops the owner thread and the workers; call after draining
  // Hands a job to the group if it is idle; only the dispatcher calls this.
  bool TryAssign(std::shared_ptr<Job> job);
  bool idle() const;
  bool busy() const;
  bool ready_once() const;  // has been ready at least once
  bool failed() const;      // FAILED: it will not start again (failure() says why)
  std::string failure() const;
  const std::string& model() const { return model_.name; }
  // Whether this group's layout can run the request: a CFG-parallel group (cfg > 1) splits the two
  // CFG branches over its ranks, so it needs a request that uses CFG by the model's rule.
  bool Accepts(const v1::GenerateRequest& request) const;
  int id() const { return group_.id; }
  v1::GroupStatus GetStatus() const;

 private:
  struct Rank {
    std::unique_ptr<WorkerProcess> process;
    std::unique_ptr<internal::Worker::Stub> stub;
    std::string socket;
  };

  enum class StartResult { kReady, kRetry, kPermanent, kStopping };

  void OwnerLoop();
  StartResult StartWorkers();
  void Fail(const std::string& reason);
  void KillStalled(const std::string& what);  // the watchdog: mark the group dead and SIGKILL its ranks
  double StallLimitSeconds() const;
  std::string FailureFile(int rank) const;  // where a rank that cannot load its model writes why
  void StopWorkers();
  void RunJob(const std::shared_ptr<Job>& job);
  void OnWorkerExit(int rank, pid_t pid, int wait_status);
  void SetState(v1::GroupState s);
  bool WaitInterruptible(double seconds);  // false if stopping

  const GroupConfig group_;
  const ModelConfig model_;
  const ModelInfo info_;
  const ServerConfig& server_;
  const std::string worker_binary_;
  Metrics& metrics_;
  std::function<void()> on_idle_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  v1::GroupState state_ = v1::GROUP_STATE_STARTING;
  std::shared_ptr<Job> job_;          // assigned, not yet finished
  std::string running_request_;
  bool stopping_ = false;
  bool expect_exits_ = false;         // we are stopping the workers ourselves
  bool died_ = false;                 // a rank died unexpectedly (or was killed by the watchdog)
  std::string died_what_;
  int died_exit_code_ = -1;           // the first dead rank's exit code; -1 if it was signalled
  std::string failure_;               // FAILED's reason, or the last start failure's
  double longest_gap_s_ = 0;          // owner thread: longest time between worker events seen
  bool ready_once_ = false;
  uint32_t restarts_ = 0;
  uint64_t completed_ = 0;
  std::vector<Rank> ranks_;           // owner thread only (pids copied under mu_)
  std::vector<int64_t> pids_;
  std::thread owner_;
};

}  // namespace ditserve::server
