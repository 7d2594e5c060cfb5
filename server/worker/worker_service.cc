#include "server/worker/worker_service.h"

#include <unistd.h>

#include <thread>

#include "server/grpc_status.h"
#include "server/request_params.h"
#include "server/result_stream.h"

namespace ditserve::worker {
namespace {

v1::Stage ToProtoStage(Stage s) {
  switch (s) {
    case Stage::kTextEncode: return v1::STAGE_TEXT_ENCODE;
    case Stage::kDenoise: return v1::STAGE_DENOISE;
    case Stage::kDecode: return v1::STAGE_DECODE;
    case Stage::kEncode: return v1::STAGE_ENCODE;
  }
  return v1::STAGE_UNSPECIFIED;
}

class StreamControl final : public JobControl {
 public:
  StreamControl(grpc::ServerContext* ctx, grpc::ServerWriter<internal::JobEvent>* writer, bool leader,
                uint32_t step_delay_ms)
      : ctx_(ctx), writer_(writer), leader_(leader), step_delay_ms_(step_delay_ms) {}

  bool Cancelled() override { return ctx_->IsCancelled(); }

  void Progress(Stage stage, int64_t step, int64_t total) override {
    if (leader_) {
      internal::JobEvent ev;
      auto* p = ev.mutable_progress();
      p->set_stage(ToProtoStage(stage));
      p->set_step(static_cast<uint32_t>(step));
      p->set_total_steps(static_cast<uint32_t>(total));
      writer_->Write(ev);
    }
    if (stage == Stage::kDenoise && step > 0 && step_delay_ms_ > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms_));
    }
  }

 private:
  grpc::ServerContext* ctx_;
  grpc::ServerWriter<internal::JobEvent>* writer_;
  const bool leader_;
  const uint32_t step_delay_ms_;
};

}  // namespace

void WorkerService::SetEngine(std::unique_ptr<Engine> engine) {
  engine_ = std::move(engine);
  ready_ = true;
}

grpc::Status WorkerService::Ping(grpc::ServerContext*, const internal::PingRequest*, internal::PingResponse* resp) {
  resp->set_ready(ready_);
  resp->set_rank(rank_);
  resp->set_world_size(world_size_);
  resp->set_pid(getpid());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Run(grpc::ServerContext* ctx, const internal::Job* job,
                                grpc::ServerWriter<internal::JobEvent>* writer) {
  if (!ready_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is still loading its model");
  // A cancelled previous job may still be winding down to its next step boundary: the coordinator
  // already sees its stream closed. Wait for it rather than refuse.
  std::unique_lock<std::mutex> lock(run_mu_);
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before start");
  const bool leader = rank_ == 0;
  StreamControl control(ctx, writer, leader, step_delay_ms_);
  auto out = engine_->Generate(server::ToParams(job->request()), control);
  if (!out.ok()) return server::ToGrpc(out.status());
  if (!leader) return grpc::Status::OK;

  v1::Result res;
  res.set_mime_type(out->mime_type);
  res.set_format(job->request().output_format());
  res.set_width(static_cast<uint32_t>(out->width));
  res.set_height(static_cast<uint32_t>(out->height));
  res.set_frames(static_cast<uint32_t>(out->frames));
  // The coordinator resolved fps for video models; the engine encodes at exactly that rate.
  if (job->request().output_format() == v1::OUTPUT_FORMAT_MP4) res.set_fps(job->request().fps());
  res.set_seed(out->seed);
  for (const auto& t : out->timings) {
    auto* st = res.add_timings();
    st->set_stage(ToProtoStage(t.stage));
    st->set_seconds(t.seconds);
    st->set_peak_device_bytes(t.peak_device_bytes);
  }
  res.mutable_cache()->set_steps_computed(static_cast<uint32_t>(out->steps_computed));
  res.mutable_cache()->set_steps_skipped(static_cast<uint32_t>(out->steps_skipped));
  const bool sent = server::SendChunked(
      std::move(res), out->data.data(), out->data.size(), result_chunk_bytes_,
      [&](v1::Result&& r) {
        internal::JobEvent ev;
        *ev.mutable_result() = std::move(r);
        return writer->Write(ev);
      },
      [&](v1::ResultChunk&& c) {
        internal::JobEvent ev;
        *ev.mutable_result_chunk() = std::move(c);
        return writer->Write(ev);
      });
  if (!sent) return grpc::Status(grpc::StatusCode::CANCELLED, "coordinator went away");
  return grpc::Status::OK;
}

}  // namespace ditserve::worker
