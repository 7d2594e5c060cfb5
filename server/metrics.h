// Prometheus metrics of the coordinator, served on their own HTTP port (/metrics) by prometheus-cpp.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Exposer;
template <typename T> class Family;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace ditserve::server {

class Metrics {
 public:
  // bind_address "host:port"; empty = collect but do not serve. Plain HTTP: bind it to loopback or a
  // private interface: Debian 12's civetweb cannot use OpenSSL 3 (docs/hardening.md, config refuses HTTPS).
  explicit Metrics(const std::string& bind_address);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Exports a group's series at their initial values, so dashboards see 0 rather than nothing.
  void RegisterGroup(int group, const std::string& model);
  void RequestFinished(const std::string& model, const std::string& status, double seconds);
  void QueueDepth(size_t depth);
  void QueueWait(const std::string& model, double seconds);
  void Step(const std::string& model, double seconds);
  void Stage(const std::string& model, const std::string& stage, double seconds);
  void InFlight(int group, const std::string& model, int n);
  void GroupUp(int group, const std::string& model, bool up);
  void WorkerRestart(int group, const std::string& model);
  void GroupFailed(int group, const std::string& model);  // FAILED for good (the reason is in status and logs)
  void CacheSteps(const std::string& model, int64_t computed, int64_t skipped);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  prometheus::Family<prometheus::Histogram>* queue_wait_;
  prometheus::Family<prometheus::Histogram>* step_;
  prometheus::Family<prometheus::Histogram>* stage_;
  prometheus::Family<prometheus::Gauge>* inflight_;
  prometheus::Family<prometheus::Gauge>* group_up_;
  prometheus::Family<prometheus::Counter>* restarts_;
  prometheus::Family<prometheus::Gauge>* group_failed_;
  prometheus::Family<prometheus::Counter>* cache_steps_;
};

}  // namespace ditserve::server
