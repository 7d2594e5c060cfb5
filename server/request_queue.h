// Bounded FIFO of accepted jobs. Full -> the caller answers RESOURCE_EXHAUSTED; nothing queued is ever
// dropped. Positions are pushed to each job as Queued events whenever they change.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "server/job.h"

namespace ditserve::server {

class RequestQueue {
 public:
  explicit RequestQueue(size_t capacity) : capacity_(capacity) {}

  // False when full or closed.
  bool TryPush(std::shared_ptr<Job> job);
  // Removes and returns the first job for which `runnable` is true (FIFO among runnable jobs), or null.
  std::shared_ptr<Job> PopFirst(const std::function<bool(const Job&)>& runnable);
  // Removes a job that was cancelled while waiting; false if it already left the queue.
  bool Remove(const Job* job);
  void Close();  // draining: no more pushes
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  void AnnouncePositionsLocked();

  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<Job>> jobs_;
  bool closed_ = false;
};

}  // namespace ditserve::server
