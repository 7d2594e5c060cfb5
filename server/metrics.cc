#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ditserve::server {
namespace {

// Seconds buckets spanning a tiny CPU model's milliseconds to a video model's minutes.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                            5,    10,    20,   40,  80,   160, 320, 640};
  return b;
}
const prometheus::Histogram::BucketBoundaries& StepBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                            0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}

}  // namespace

Metrics::Metrics(const std::string& bind_address, std::function<bool(const std::string&)> authorize)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  requests_ = &BuildCounter().Name("ditserve_requests_total").Help("Generate requests by model and final status").Register(*registry_);
  latency_ = &BuildHistogram().Name("ditserve_request_duration_seconds").Help("Accept to final status, by model").Register(*registry_);
  queue_depth_ = &BuildGauge().Name("ditserve_queue_depth").Help("Requests waiting for a worker group").Register(*registry_);
  queue_wait_ = &BuildHistogram().Name("ditserve_queue_wait_seconds").Help("Time from accept to start on a group").Register(*registry_);
  step_ = &BuildHistogram().Name("ditserve_step_duration_seconds").Help("Denoising step time seen by the coordinator").Register(*registry_);
  stage_ = &BuildHistogram().Name("ditserve_stage_duration_seconds").Help("Pipeline stage time reported by workers").Register(*registry_);
  inflight_ = &BuildGauge().Name("ditserve_group_inflight_requests").Help("Requests running on each worker group").Register(*registry_);
  group_up_ = &BuildGauge().Name("ditserve_group_up").Help("1 when the worker group is ready or busy").Register(*registry_);
  restarts_ = &BuildCounter().Name("ditserve_worker_restarts_total").Help("Worker group restarts after a worker died").Register(*registry_);
  group_failed_ = &BuildGauge().Name("ditserve_group_failed").Help("1 when the worker group has FAILED and will not be retried (reason: GetServerStatus, logs)").Register(*registry_);
  cache_steps_ = &BuildCounter().Name("ditserve_cache_steps_total").Help("Denoising steps by First Block Cache outcome (computed|skipped)").Register(*registry_);
  queue_depth_->Add({}).Set(0);
  if (!bind_address.empty()) {
    exposer_ = std::make_unique<prometheus::Exposer>(bind_address);
    if (authorize) {
      exposer_->RegisterAuth([authorize = std::move(authorize)](const std::string&, const std::string& password) {
        return authorize(password);
      }, "ditserve metrics");
    }
    exposer_->RegisterCollectable(registry_);
  }
}

Metrics::~Metrics() = default;

void Metrics::RegisterGroup(int group, const std::string& model) {
  const prometheus::Labels labels = {{"group", std::to_string(group)}, {"model", model}};
  restarts_->Add(labels);
  inflight_->Add(labels).Set(0);
  group_up_->Add(labels).Set(0);
  group_failed_->Add(labels).Set(0);
}

void Metrics::RequestFinished(const std::string& model, const std::string& status, double seconds) {
  requests_->Add({{"model", model}, {"status", status}}).Increment();
  latency_->Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
}
void Metrics::QueueDepth(size_t depth) { queue_depth_->Add({}).Set(static_cast<double>(depth)); }
void Metrics::QueueWait(const std::string& model, double seconds) {
  queue_wait_->Add({{"model", model}}, LatencyBuckets()).Observe(seconds);
}
void Metrics::Step(const std::string& model, double seconds) {
  step_->Add({{"model", model}}, StepBuckets()).Observe(seconds);
}
void Metrics::Stage(const std::string& model, const std::string& stage, double seconds) {
  stage_->Add({{"model", model}, {"stage", stage}}, LatencyBuckets()).Observe(seconds);
}
void Metrics::InFlight(int group, const std::string& model, int n) {
  inflight_->Add({{"group", std::to_string(group)}, {"model", model}}).Set(n);
}
void Metrics::GroupUp(int group, const std::string& model, bool up) {
  group_up_->Add({{"group", std::to_string(group)}, {"model", model}}).Set(up ? 1 : 0);
}
void Metrics::WorkerRestart(int group, const std::string& model) {
  restarts_->Add({{"group", std::to_string(group)}, {"model", model}}).Increment();
}
void Metrics::GroupFailed(int group, const std::string& model) {
  group_failed_->Add({{"group", std::to_string(group)}, {"model", model}}).Set(1);
}
void Metrics::CacheSteps(const std::string& model, int64_t computed, int64_t skipped) {
  cache_steps_->Add({{"model", model}, {"outcome", "computed"}}).Increment(static_cast<double>(computed));
  cache_steps_->Add({{"model", model}, {"outcome", "skipped"}}).Increment(static_cast<double>(skipped));
}

}  // namespace ditserve::server
