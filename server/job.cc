#include "server/job.h"

namespace ditserve::server {

void Job::PushEvent(v1::GenerateEvent ev) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (final_) return;
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

void Job::Finish(Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (final_) return;
    final_ = std::move(status);
    canceller_ = nullptr;
  }
  cv_.notify_all();
}

bool Job::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return final_.has_value();
}

void Job::RequestCancel(Status reason) {
  std::function<void()> canceller;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancel_ || final_) return;
    cancel_ = std::move(reason);
    canceller = canceller_;
  }
  if (canceller) canceller();
}

std::optional<Status> Job::cancel_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancel_;
}

void Job::SetCanceller(std::function<void()> canceller) {
  std::function<void()> fire;
  {
    std::lock_guard<std::mutex> lock(mu_);
    canceller_ = std::move(canceller);
    if (cancel_.has_value()) fire = canceller_;
  }
  if (fire) fire();  // cancel raced the start: stop it right away
}

Job::Next Job::WaitNext(v1::GenerateEvent* ev, Status* final_status, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || final_.has_value(); });
  if (!events_.empty()) {
    *ev = std::move(events_.front());
    events_.pop_front();
    return Next::kEvent;
  }
  if (final_) {
    *final_status = *final_;
    return Next::kDone;
  }
  return Next::kTimeout;
}

}  // namespace ditserve::server
