#include "ditserve/request.h"
#include "server/request_params.h"
#include "server/worker_group.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "server/grpc_status.h"
#include "server/result_stream.h"
#include "server/worker/exit_codes.h"

namespace ditserve::server {
namespace {

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Shared between the owner thread and whoever cancels the job (RPC handler, worker monitor).
struct RunState {
  std::mutex mu;
  bool done = false;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  void CancelAll() {
    std::lock_guard<std::mutex> lock(mu);
    if (done) return;
    for (auto& c : contexts) c->TryCancel();
  }
};

}  // namespace

WorkerGroup::WorkerGroup(GroupConfig group, ModelConfig model, ModelInfo info, const ServerConfig& server,
                         std::string worker_binary,
                         Metrics& metrics, std::function<void()> on_idle)
    : group_(std::move(group)),
      model_(std::move(model)),
      info_(std::move(info)),
      server_(server),
      worker_binary_(std::move(worker_binary)),
      metrics_(metrics),
      on_idle_(std::move(on_idle)) {
  metrics_.RegisterGroup(group_.id, model_.name);
}

WorkerGroup::~WorkerGroup() { Stop(); }

void WorkerGroup::Start() { owner_ = std::thread([this] { OwnerLoop(); }); }

void WorkerGroup::Stop() {
  std::shared_ptr<Job> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    running = job_;
  }
  // Past the drain timeout: stop a still-running job at its next step instead of waiting it out.
  if (running) running->RequestCancel(Unavailable("server is shutting down; request stopped"));
  cv_.notify_all();
  if (owner_.joinable()) owner_.join();
}

bool WorkerGroup::TryAssign(std::shared_ptr<Job> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != v1::GROUP_STATE_IDLE || job_ || stopping_) return false;
    job_ = std::move(job);
    state_ = v1::GROUP_STATE_BUSY;
    running_request_ = job_->id();
  }
  cv_.notify_all();
  return true;
}

bool WorkerGroup::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_ == v1::GROUP_STATE_IDLE && !job_;
}

bool WorkerGroup::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_ != nullptr;
}

bool WorkerGroup::ready_once() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_once_;
}

bool WorkerGroup::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_ == v1::GROUP_STATE_FAILED;
}

std::string WorkerGroup::failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

v1::GroupStatus WorkerGroup::GetStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  v1::GroupStatus s;
  s.set_id(group_.id);
  s.set_model(model_.name);
  s.set_ranks(group_.ranks);
  s.set_layout(group_.Layout());
  s.set_fp8_attention(group_.fp8_attention);
  for (const auto& d : group_.devices) s.add_devices(d);
  s.set_state(state_);
  s.set_request_id(running_request_);
  s.set_restarts(restarts_);
  s.set_completed(completed_);
  for (auto p : pids_) s.add_pids(p);
  s.set_failure(failure_);
  return s;
}

void WorkerGroup::SetState(v1::GroupState s) {
  bool now_idle = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = s;
    if (s == v1::GROUP_STATE_IDLE) {
      ready_once_ = true;
      now_idle = true;
    }
  }
  metrics_.GroupUp(group_.id, model_.name, s == v1::GROUP_STATE_IDLE || s == v1::GROUP_STATE_BUSY);
  if (now_idle && on_idle_) on_idle_();
}

bool WorkerGroup::WaitInterruptible(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return stopping_; });
  return !stopping_;
}

void WorkerGroup::Fail(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = v1::GROUP_STATE_FAILED;
    failure_ = reason;
  }
  spdlog::error("group {} (model {}): FAILED, not retrying: {}", group_.id, model_.name, reason);
  metrics_.GroupUp(group_.id, model_.name, false);
  metrics_.GroupFailed(group_.id, model_.name);
  if (on_idle_) on_idle_();  // the dispatcher fails what is queued for a model nobody can serve now
}

void WorkerGroup::OwnerLoop() {
  double backoff = 0.5;
  int failed_starts = 0;
  SetState(v1::GROUP_STATE_STARTING);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
    }
    if (ranks_.empty()) {
      const StartResult started = StartWorkers();
      if (started == StartResult::kStopping) break;
      if (started != StartResult::kReady) {
        StopWorkers();
        ++failed_starts;
        std::string why = failure();
        if (started == StartResult::kPermanent || failed_starts >= server_.max_start_attempts) {
          if (started != StartResult::kPermanent) {
            why = std::to_string(failed_starts) + " failed starts in a row; last: " + why;
          }
          Fail(why);
          break;
        }
        spdlog::warn("group {}: start failed ({}); retrying in {:.1f}s (attempt {} of {})", group_.id, why, backoff,
                     failed_starts + 1, server_.max_start_attempts);
        if (!WaitInterruptible(backoff)) break;
        backoff = std::min(backoff * 2, 30.0);
        continue;
      }
      failed_starts = 0;
      backoff = 0.5;
      SetState(v1::GROUP_STATE_IDLE);
    }

    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || died_ || job_; });
      if (stopping_) break;
      if (died_) {
        // Died while idle (or with a job just assigned): restart first, the job waits.
        spdlog::error("group {}: {}; restarting", group_.id, died_what_);
        ++restarts_;
        state_ = v1::GROUP_STATE_RESTARTING;
        lock.unlock();
        metrics_.WorkerRestart(group_.id, model_.name);
        metrics_.GroupUp(group_.id, model_.name, false);
        StopWorkers();
        continue;
      }
      job = job_;
    }

    metrics_.InFlight(group_.id, model_.name, 1);
    RunJob(job);
    metrics_.InFlight(group_.id, model_.name, 0);

    bool died;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_.reset();
      running_request_.clear();
      ++completed_;
      died = died_;
      if (died) {
        ++restarts_;
        state_ = v1::GROUP_STATE_RESTARTING;
      }
    }
    if (died) {
      metrics_.WorkerRestart(group_.id, model_.name);
      metrics_.GroupUp(group_.id, model_.name, false);
      StopWorkers();
      continue;
    }
    SetState(v1::GROUP_STATE_IDLE);
  }
  // Fail a job that was assigned but never run (stop during restart).
  std::shared_ptr<Job> orphan;
  {
    std::lock_guard<std::mutex> lock(mu_);
    orphan = std::move(job_);
    if (state_ != v1::GROUP_STATE_FAILED) state_ = v1::GROUP_STATE_STOPPED;
  }
  if (orphan) orphan->Finish(Unavailable("server is shutting down"));
  StopWorkers();
}

WorkerGroup::StartResult WorkerGroup::StartWorkers() {
  std::error_code ec;
  bool was_ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    died_ = false;
    died_exit_code_ = -1;
    expect_exits_ = false;
    pids_.clear();
    was_ready = ready_once_;
  }
  auto failed = [&](StartResult result, const std::string& why) {
    spdlog::error("group {}: {}", group_.id, why);
    std::lock_guard<std::mutex> lock(mu_);
    failure_ = why;
    return result;
  };
  for (int r = 0; r < group_.ranks; ++r) {
    Rank rank;
    rank.socket = server_.runtime_dir + "/g" + std::to_string(group_.id) + "r" + std::to_string(r) + ".sock";
    std::filesystem::remove(rank.socket, ec);
    std::vector<std::string> args = {
        "--listen", "unix:" + rank.socket, "--model-dir", model_.path, "--device", group_.devices[r],
        "--group", std::to_string(group_.id), "--rank", std::to_string(r), "--world-size", std::to_string(group_.ranks),
        "--store-host", server_.store_host, "--store-port", std::to_string(server_.store_base_port + group_.id), "--cfg", std::to_string(group_.cfg),
        "--ulysses", std::to_string(group_.ulysses), "--ring", std::to_string(group_.ring), "--threads",
        std::to_string(server_.worker_threads), "--step-delay-ms", std::to_string(server_.debug_step_delay_ms),
        "--cache-warmup-steps", std::to_string(server_.cache_warmup_steps), "--cache-max-skips",
        std::to_string(server_.cache_max_consecutive_skips), "--cuda-graphs", server_.cuda_graphs ? "1" : "0",
        "--fp8-attention", group_.fp8_attention ? "1" : "0",
        "--video-crf", std::to_string(server_.video_crf), "--prompt-in-metadata", server_.prompt_in_metadata ? "1" : "0",
        "--device-memory-limit-mib", std::to_string(server_.device_memory_limit_mib), "--result-chunk-bytes",
        std::to_string(server_.result_chunk_bytes), "--log-format", server_.log_format, "--parent-pid",
        std::to_string(getpid()), "--failure-file", FailureFile(r)};
    std::filesystem::remove(FailureFile(r), ec);
    rank.process = std::make_unique<WorkerProcess>(
        worker_binary_, args, [this, r](pid_t pid, int st) { OnWorkerExit(r, pid, st); });
    std::string err;
    if (!rank.process->Start(&err)) {
      ranks_.push_back(std::move(rank));
      return failed(StartResult::kPermanent, err);  // the binary cannot be run at all
    }
    // gRPC's default 4 MiB receive limit stays: results arrive in chunks (server/result_stream.h).
    rank.stub = internal::Worker::NewStub(grpc::CreateChannel("unix:" + rank.socket, grpc::InsecureChannelCredentials()));
    {
      std::lock_guard<std::mutex> lock(mu_);
      pids_.push_back(rank.process->pid());
    }
    ranks_.push_back(std::move(rank));
  }
  spdlog::info("group {}: started {} worker(s) for model {} ({}{})", group_.id, group_.ranks, model_.name,
               group_.Layout(), group_.fp8_attention ? ", FP8 attention" : "");

  // Wait for every rank to answer Ping with ready (model loaded, rendezvous done).
  const auto deadline = Clock::now() + std::chrono::duration<double>(server_.worker_start_timeout_s);
  std::vector<bool> ready(ranks_.size(), false);
  while (Clock::now() < deadline) {
    std::string died_what;
    int exit_code = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return StartResult::kStopping;
      if (died_) {
        died_what = died_what_;
        exit_code = died_exit_code_;
      }
    }
    if (!died_what.empty()) {
      // A model that does not load on its device (bad files, no such device) or arguments the worker
      // refuses will fail the same way on every retry. After the group has once been ready, the same
      // exit may be passing (a device still freeing memory), so only repeated failures count then.
      const bool permanent =
          !was_ready && (exit_code == worker::kExitCannotLoad || exit_code == worker::kExitBadArguments);
      std::string why = died_what + " during start";
      for (int r = 0; r < group_.ranks; ++r) {
        std::ifstream in(FailureFile(r));
        std::string reason((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!reason.empty()) {
          why += ": rank " + std::to_string(r) + ": " + reason;
          break;
        }
      }
      return failed(permanent ? StartResult::kPermanent : StartResult::kRetry, why);
    }
    bool all = true;
    for (size_t r = 0; r < ranks_.size(); ++r) {
      if (ready[r]) continue;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      internal::PingRequest req;
      internal::PingResponse resp;
      ready[r] = ranks_[r].stub->Ping(&ctx, req, &resp).ok() && resp.ready();
      all = all && ready[r];
    }
    if (all) {
      spdlog::info("group {}: ready", group_.id);
      std::lock_guard<std::mutex> lock(mu_);
      failure_.clear();
      return StartResult::kReady;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "workers not ready after %.0f s (server.worker_start_timeout_s)",
                server_.worker_start_timeout_s);
  return failed(StartResult::kRetry, buf);
}

void WorkerGroup::StopWorkers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    expect_exits_ = true;
  }
  for (auto& r : ranks_) {
    if (r.process) r.process->Stop(10.0);
  }
  ranks_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  pids_.clear();
  died_ = false;
}

void WorkerGroup::OnWorkerExit(int rank, pid_t pid, int wait_status) {
  std::vector<int64_t> siblings;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (expect_exits_) return;
    if (!died_) {
      died_ = true;
      died_what_ = "worker rank " + std::to_string(rank) + " (pid " + std::to_string(pid) + ") " +
                   WorkerProcess::DescribeExit(wait_status);
      died_exit_code_ = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
    }
    siblings = pids_;
  }
  // The surviving ranks may be blocked in a collective with the dead one: end them too.
  for (auto p : siblings) {
    if (p != pid) kill(static_cast<pid_t>(p), SIGKILL);
  }
  cv_.notify_all();
}

std::string WorkerGroup::FailureFile(int rank) const {
  return server_.runtime_dir + "/g" + std::to_string(group_.id) + "r" + std::to_string(rank) + ".failure";
}

void WorkerGroup::KillStalled(const std::string& what) {
  std::vector<int64_t> pids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!died_) {
      died_ = true;
      died_what_ = "the group " + what;
      died_exit_code_ = -1;
    }
    pids = pids_;
  }
  spdlog::error("group {}: {}", group_.id, what);
  for (auto p : pids) kill(static_cast<pid_t>(p), SIGKILL);  // SIGKILL ends a SIGSTOPped process too
  cv_.notify_all();
}

double WorkerGroup::StallLimitSeconds() const {
  if (server_.stall_timeout_s > 0) return server_.stall_timeout_s;
  uint64_t completed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    completed = completed_;
  }
  // Before any request has completed, a first run's warm-up (kernel autotuning, graph capture) is unmeasured.
  return completed == 0 ? 300.0 : std::max(60.0, 10.0 * longest_gap_s_);
}

bool WorkerGroup::Accepts(const v1::GenerateRequest& request) const {
  if (request.model() != model_.name) return false;
  return group_.cfg == 1 || UsesCfg(info_, ToParams(request));
}

void WorkerGroup::RunJob(const std::shared_ptr<Job>& job) {
  const auto started = Clock::now();
  const std::string& model = model_.name;
  const double queue_s = std::chrono::duration<double>(started - job->created()).count();
  metrics_.QueueWait(model, queue_s);

  auto run = std::make_shared<RunState>();
  for (size_t r = 0; r < ranks_.size(); ++r) run->contexts.push_back(std::make_unique<grpc::ClientContext>());
  job->SetCanceller([run] { run->CancelAll(); });

  internal::Job msg;
  msg.set_request_id(job->id());
  *msg.mutable_request() = job->request();

  // Followers: drain their (empty) streams and keep their status.
  std::vector<grpc::Status> follower_status(ranks_.size());
  std::vector<std::thread> followers;
  for (size_t r = 1; r < ranks_.size(); ++r) {
    followers.emplace_back([&, r] {
      auto reader = ranks_[r].stub->Run(run->contexts[r].get(), msg);
      internal::JobEvent ev;
      while (reader->Read(&ev)) {
      }
      follower_status[r] = reader->Finish();
      if (!follower_status[r].ok()) run->CancelAll();  // one rank failing fails the job on all
    });
  }

  // Watchdog: a rank that stops making progress (frozen, deadlocked in a collective) would hold the job
  // and the group forever; past the stall limit the group is treated as dead: killed, job failed, restart.
  std::atomic<int64_t> last_event_ns{Clock::now().time_since_epoch().count()};
  std::mutex watchdog_mu;
  std::condition_variable watchdog_cv;
  bool watchdog_done = false;
  const double stall_limit_s = StallLimitSeconds();
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(watchdog_mu);
    while (!watchdog_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return watchdog_done; })) {
      const double idle_s = SecondsSince(Clock::time_point(Clock::duration(last_event_ns.load())));
      if (idle_s <= stall_limit_s) continue;
      char what[160];
      std::snprintf(what, sizeof what, "made no progress for %.1f s (stall limit %.1f s): frozen or deadlocked; killed",
                    idle_s, stall_limit_s);
      KillStalled(what);
      run->CancelAll();
      return;
    }
  });

  // The leader's output passes through unchanged; the assembler only checks offsets and the total.
  ResultAssembler result_check(/*keep_data=*/false);
  Status stream_error;
  auto reader = ranks_[0].stub->Run(run->contexts[0].get(), msg);
  internal::JobEvent ev;
  auto last_event = Clock::now();
  while (reader->Read(&ev)) {
    const double gap_s = SecondsSince(last_event);
    last_event = Clock::now();
    last_event_ns = last_event.time_since_epoch().count();
    longest_gap_s_ = std::max(longest_gap_s_, gap_s);
    v1::GenerateEvent out;
    if (ev.has_progress()) {
      const auto& p = ev.progress();
      if (p.stage() == v1::STAGE_DENOISE && p.step() > 0) metrics_.Step(model, gap_s);
      *out.mutable_progress() = p;
    } else if (ev.has_result()) {
      stream_error = result_check.Add(ev.result());
      if (!stream_error.ok()) break;
      v1::Result* res = out.mutable_result();
      *res = std::move(*ev.mutable_result());
      res->set_request_id(job->id());
      res->set_client_request_id(job->request().client_request_id());
      res->set_group(group_.id);
      res->set_queue_seconds(queue_s);
      auto* qt = res->add_timings();
      qt->set_stage(v1::STAGE_QUEUED);
      qt->set_seconds(queue_s);
      for (const auto& t : res->timings()) metrics_.Stage(model, v1::Stage_Name(t.stage()), t.seconds());
      metrics_.CacheSteps(model, res->cache().steps_computed(), res->cache().steps_skipped());
    } else if (ev.has_result_chunk()) {
      stream_error = result_check.Add(ev.result_chunk());
      if (!stream_error.ok()) break;
      *out.mutable_result_chunk() = std::move(*ev.mutable_result_chunk());
    } else {
      continue;
    }
    job->PushEvent(std::move(out));
  }
  if (!stream_error.ok()) run->CancelAll();  // a broken stream: stop every rank, then fail the job below
  grpc::Status leader_status = reader->Finish();
  for (auto& t : followers) t.join();
  {
    std::lock_guard<std::mutex> lock(watchdog_mu);
    watchdog_done = true;
  }
  watchdog_cv.notify_all();
  watchdog.join();
  job->SetCanceller(nullptr);
  {
    std::lock_guard<std::mutex> lock(run->mu);
    run->done = true;
  }

  Status final_status;
  bool died;
  std::string died_what;
  {
    std::lock_guard<std::mutex> lock(mu_);
    died = died_;
    died_what = died_what_;
  }
  // A failing follower cancels the leader (CancelAll), so the job's error is the first rank error that
  // is not such a cancellation; a broken stream on any rank may be a dead worker.
  grpc::Status rank_error = leader_status;
  bool broken = leader_status.error_code() == grpc::StatusCode::UNAVAILABLE;
  for (size_t r = 1; r < follower_status.size(); ++r) {
    const grpc::Status& fs = follower_status[r];
    broken = broken || fs.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (!fs.ok() && fs.error_code() != grpc::StatusCode::CANCELLED &&
        (rank_error.ok() || rank_error.error_code() == grpc::StatusCode::CANCELLED)) {
      rank_error = fs;
    }
  }
  if (!died && broken) {
    // The stream broke: give the monitor thread a moment to reap a crashed worker.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(2), [&] { return died_; });
    died = died_;
    died_what = died_what_;
  }
  if (!stream_error.ok()) {
    final_status = Internal("worker group " + std::to_string(group_.id) + " sent a malformed result for request " +
                            job->id() + ": " + stream_error.message());
  } else if (leader_status.ok() && result_check.complete()) {
    final_status = Status::Ok();
  } else if (died) {
    final_status = Unavailable("worker group " + std::to_string(group_.id) + " failed while running request " +
                               job->id() + ": " + died_what + "; the group is restarting");
  } else if (auto reason = job->cancel_reason()) {
    final_status = *reason;
  } else if (!rank_error.ok()) {
    final_status = FromGrpc(rank_error);
  } else if (result_check.has_result()) {
    final_status = Internal("worker finished request " + job->id() + " with an incomplete result: " +
                            result_check.CheckComplete().message());
  } else {
    final_status = Internal("worker finished request " + job->id() + " without a result");
  }
  if (!final_status.ok()) {
    spdlog::info("group {}: request {} ended: {}", group_.id, job->id(), final_status.ToString());
  }
  job->Finish(final_status);
}

}  // namespace ditserve::server
