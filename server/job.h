// One accepted Generate request as it moves queue -> group -> client. The RPC handler thread consumes
// its events; the queue and the group's owner thread produce them. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "ditserve/status.h"
#include "ditserve/v1/ditserve.pb.h"

namespace ditserve::server {

using Clock = std::chrono::steady_clock;

class Job {
 public:
  Job(std::string id, v1::GenerateRequest request)
      : id_(std::move(id)), request_(std::move(request)), created_(Clock::now()) {}

  const std::string& id() const { return id_; }
  const v1::GenerateRequest& request() const { return request_; }
  Clock::time_point created() const { return created_; }

  // --- producers (queue, group) ---
  void PushEvent(v1::GenerateEvent ev);
  // Terminal; later calls are ignored so a crash racing a cancel reports one status.
  void Finish(Status status);
  bool finished() const;

  // Cancellation: requested by the client side (disconnect, deadline, server stop). If the job is
  // running, the canceller installed by the group stops it at the next step.
  void RequestCancel(Status reason);
  std::optional<Status> cancel_reason() const;
  void SetCanceller(std::function<void()> canceller);  // empty function clears it

  // --- consumer (RPC handler) ---
  enum class Next { kEvent, kDone, kTimeout };
  Next WaitNext(v1::GenerateEvent* ev, Status* final_status, std::chrono::milliseconds timeout);

 private:
  const std::string id_;
  const v1::GenerateRequest request_;
  const Clock::time_point created_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::GenerateEvent> events_;
  std::optional<Status> final_;
  std::optional<Status> cancel_;
  std::function<void()> canceller_;
};

}  // namespace ditserve::server
