#include "server/request_queue.h"

#include <algorithm>

namespace ditserve::server {

bool RequestQueue::TryPush(std::shared_ptr<Job> job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || jobs_.size() >= capacity_) return false;
  v1::GenerateEvent ev;
  ev.mutable_queued()->set_position(static_cast<uint32_t>(jobs_.size()));
  ev.mutable_queued()->set_request_id(job->id());
  job->PushEvent(std::move(ev));
  jobs_.push_back(std::move(job));
  return true;
}

std::shared_ptr<Job> RequestQueue::PopFirst(const std::function<bool(const Job&)>& runnable) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const auto& j) { return runnable(*j); });
  if (it == jobs_.end()) return nullptr;
  auto job = *it;
  jobs_.erase(it);
  AnnouncePositionsLocked();
  return job;
}

bool RequestQueue::Remove(const Job* job) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j.get() == job; });
  if (it == jobs_.end()) return false;
  jobs_.erase(it);
  AnnouncePositionsLocked();
  return true;
}

void RequestQueue::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

size_t RequestQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void RequestQueue::AnnouncePositionsLocked() {
  for (size_t i = 0; i < jobs_.size(); ++i) {
    v1::GenerateEvent ev;
    ev.mutable_queued()->set_position(static_cast<uint32_t>(i));
    ev.mutable_queued()->set_request_id(jobs_[i]->id());
    jobs_[i]->PushEvent(std::move(ev));
  }
}

}  // namespace ditserve::server
