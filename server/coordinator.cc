#include "ditserve/request.h"
#include "server/coordinator.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "server/validate.h"

namespace ditserve::server {

StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(ServerConfig config, std::string worker_binary,
                                                           const ApiKeys* api_keys) {
  // server.runtime_dir is the parent of the private directory (default /tmp).
  ASSIGN_OR_RETURN(std::unique_ptr<RuntimeDir> runtime_dir,
                   RuntimeDir::Create(config.runtime_dir.empty() ? "/tmp" : config.runtime_dir));
  config.runtime_dir = runtime_dir->path();
  std::unique_ptr<Metrics> metrics;
  try {
    std::function<bool(const std::string&)> authorize;
    if (api_keys != nullptr && !config.metrics_open) {
      authorize = [api_keys](const std::string& key) { return api_keys->Lookup(key).has_value(); };
    }
    metrics = std::make_unique<Metrics>(config.metrics_address, std::move(authorize));
  } catch (const std::exception& e) {
    return Unavailable("metrics_address " + config.metrics_address + ": cannot listen: " + e.what());
  }
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(config), std::move(runtime_dir), std::move(metrics)));
  for (const auto& m : c->config_.models) {
    auto info = ReadModelInfo(m.path);
    if (!info.ok()) return Status(info.status().code(), "model '" + m.name + "': " + info.status().message());
    info->name = m.name;
    c->models_[m.name] = *info;
  }
  for (const auto& g : c->config_.groups) {
    // Ulysses splits the attention heads over its ranks: the layout must divide them.
    const ModelInfo& info = c->models_.at(g.model);
    if (g.ulysses > 1 && info.attention_heads > 0 && info.attention_heads % g.ulysses != 0) {
      return InvalidArgument("group " + std::to_string(g.id) + " (model '" + g.model + "'): layout.ulysses " +
                             std::to_string(g.ulysses) + " must divide the model's " +
                             std::to_string(info.attention_heads) + " attention heads");
    }
    const ModelConfig* mc = nullptr;
    for (const auto& m : c->config_.models) {
      if (m.name == g.model) mc = &m;
    }
    c->groups_.push_back(std::make_unique<WorkerGroup>(g, *mc, info, c->config_, worker_binary, *c->metrics_,
                                                       [raw = c.get()] { raw->Notify(); }));
  }
  for (auto& g : c->groups_) g->Start();
  c->dispatcher_ = std::thread([raw = c.get()] { raw->DispatchLoop(); });
  return c;
}

Coordinator::Coordinator(ServerConfig config, std::unique_ptr<RuntimeDir> runtime_dir, std::unique_ptr<Metrics> metrics)
    : runtime_dir_(std::move(runtime_dir)),
      config_(std::move(config)),
      metrics_(std::move(metrics)),
      queue_(config_.queue_capacity) {}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Notify() {
  { std::lock_guard<std::mutex> lock(mu_); }
  cv_.notify_all();
}

StatusOr<std::shared_ptr<Job>> Coordinator::Submit(const v1::GenerateRequest& request) {
  if (draining_) return Unavailable("server is shutting down; not accepting new requests");
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(rng_mu_);
    seed = rng_() & ((1ull << 53) - 1);  // representable exactly in a double (JSON clients)
  }
  ASSIGN_OR_RETURN(v1::GenerateRequest resolved, ValidateAndResolve(request, models_, seed));
  bool servable = false;
  for (const auto& g : groups_) servable = servable || g->Accepts(resolved);
  if (servable) RETURN_IF_ERROR(LiveGroupFor(resolved));
  if (!servable) {
    return InvalidArgument("model '" + resolved.model() +
                           "' is served only by CFG-parallel groups (layout cfg=2): requests need classifier-free "
                           "guidance (" + CfgRuleText(models_.at(resolved.model()).cfg) + ")");
  }
  auto job = std::make_shared<Job>("req-" + std::to_string(next_id_++), std::move(resolved));
  if (!queue_.TryPush(job)) {
    if (draining_) return Unavailable("server is shutting down; not accepting new requests");
    return ResourceExhausted("request queue is full (" + std::to_string(queue_.capacity()) +
                             " waiting); retry later");
  }
  metrics_->QueueDepth(queue_.size());
  Notify();
  return job;
}

Status Coordinator::LiveGroupFor(const v1::GenerateRequest& request) const {
  std::string failures;
  for (const auto& g : groups_) {
    if (!g->Accepts(request)) continue;
    if (!g->failed()) return Status::Ok();
    failures += (failures.empty() ? "group " : "; group ") + std::to_string(g->id()) + ": " + g->failure();
  }
  return Unavailable("model '" + request.model() + "' cannot be served: its worker groups failed to start (" +
                     failures + ")");
}

void Coordinator::Cancel(const std::shared_ptr<Job>& job, Status reason) {
  if (queue_.Remove(job.get())) {
    metrics_->QueueDepth(queue_.size());
    job->Finish(std::move(reason));
    return;
  }
  job->RequestCancel(std::move(reason));
}

void Coordinator::DispatchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (stop_) break;
    lock.unlock();
    while (true) {
      WorkerGroup* target = nullptr;
      auto job = queue_.PopFirst([&](const Job& j) {
        for (auto& g : groups_) {
          if (g->Accepts(j.request()) && g->idle()) {
            target = g.get();
            return true;
          }
        }
        return false;
      });
      if (!job) {
        // Jobs for a model whose every group has FAILED would wait forever: fail them now.
        job = queue_.PopFirst([&](const Job& j) { return !LiveGroupFor(j.request()).ok(); });
        if (!job) break;
        metrics_->QueueDepth(queue_.size());
        job->Finish(LiveGroupFor(job->request()));
        continue;
      }
      metrics_->QueueDepth(queue_.size());
      if (auto reason = job->cancel_reason()) {
        job->Finish(*reason);
        continue;
      }
      if (!target->TryAssign(job)) {
        // Only this thread assigns, so an idle group stays idle until assigned; a group that went
        // down in between cannot take it: fail loudly rather than lose it.
        job->Finish(Unavailable("worker group " + std::to_string(target->id()) + " became unavailable"));
      }
    }
    lock.lock();
  }
}

std::string Coordinator::ModelLabel(const v1::GenerateRequest& request) const {
  if (request.model().empty()) return models_.size() == 1 ? models_.begin()->first : kInvalidModelLabel;
  return models_.count(request.model()) ? request.model() : kInvalidModelLabel;
}

v1::ListModelsResponse Coordinator::ListModels() const {
  v1::ListModelsResponse resp;
  for (const auto& [name, m] : models_) {
    auto* mi = resp.add_models();
    mi->set_name(name);
    mi->set_family(m.family);
    mi->set_video(m.output == OutputKind::kVideo);
    auto fill = [](v1::Range* r, const IntRange& in) {
      r->set_min(in.min);
      r->set_max(in.max);
      r->set_multiple_of(in.multiple_of);
      r->set_default_value(in.default_value);
    };
    fill(mi->mutable_width(), m.width);
    fill(mi->mutable_height(), m.height);
    fill(mi->mutable_num_frames(), m.num_frames);
    fill(mi->mutable_num_inference_steps(), m.steps);
    mi->set_default_guidance_scale(m.default_guidance_scale);
    mi->set_guidance_embeds(m.guidance_embeds);
    mi->add_output_formats(m.output == OutputKind::kVideo ? v1::OUTPUT_FORMAT_MP4 : v1::OUTPUT_FORMAT_PNG);
    mi->set_max_prompt_chars(m.max_prompt_chars);
    mi->set_weights(m.weights);
    uint32_t n = 0;
    for (const auto& g : groups_) n += g->model() == name;
    mi->set_groups(n);
  }
  return resp;
}

v1::ServerStatus Coordinator::GetStatus() const {
  v1::ServerStatus s;
  for (const auto& g : groups_) *s.add_groups() = g->GetStatus();
  s.set_queue_depth(static_cast<uint32_t>(queue_.size()));
  s.set_queue_capacity(static_cast<uint32_t>(queue_.capacity()));
  s.set_draining(draining_);
  s.set_uptime_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  s.set_version(DITSERVE_VERSION);
  return s;
}

bool Coordinator::AllModelsReady() const {
  bool any_ready = false;
  for (const auto& [name, _] : models_) {
    bool ready = false, all_failed = true;
    for (const auto& g : groups_) {
      if (g->model() != name) continue;
      ready = ready || g->ready_once();
      all_failed = all_failed && g->failed();
    }
    // A model whose groups all FAILED does not hold up the others (it answers UNAVAILABLE).
    if (!ready && !all_failed) return false;
    any_ready = any_ready || ready;
  }
  return any_ready;
}

bool Coordinator::AllGroupsFailed() const {
  for (const auto& g : groups_) {
    if (!g->failed()) return false;
  }
  return true;
}

void Coordinator::BeginDrain() {
  draining_ = true;
  queue_.Close();
}

bool Coordinator::WaitIdle(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline && !force_stop_) {
    bool busy = queue_.size() > 0;
    for (const auto& g : groups_) busy = busy || g->busy();
    if (!busy) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void Coordinator::ForceStop() { force_stop_ = true; }

void Coordinator::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  // Whatever is still queued after the drain timeout gets a clear status, never silence.
  while (auto job = queue_.PopFirst([](const Job&) { return true; })) {
    job->Finish(Unavailable("server is shutting down"));
  }
  for (auto& g : groups_) g->Stop();
}

}  // namespace ditserve::server
