#include "server/service.h"

#include "server/grpc_status.h"

namespace ditserve::server {

grpc::Status DitServeService::Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                                       grpc::ServerWriter<v1::GenerateEvent>* writer) {
  const auto start = Clock::now();
  auto submitted = coordinator_.Submit(*req);
  const std::string model = req->model().empty() ? "-" : req->model();
  auto finish = [&](const Status& s) {
    coordinator_.metrics().RequestFinished(model, StatusCodeName(s.code()),
                                           std::chrono::duration<double>(Clock::now() - start).count());
    return ToGrpc(s);
  };
  if (!submitted.ok()) return finish(submitted.status());
  std::shared_ptr<Job> job = *submitted;

  bool cancel_sent = false;
  auto cancel = [&](Status reason) {
    if (cancel_sent) return;
    cancel_sent = true;
    coordinator_.Cancel(job, std::move(reason));
  };
  while (true) {
    v1::GenerateEvent ev;
    Status final_status;
    switch (job->WaitNext(&ev, &final_status, std::chrono::milliseconds(100))) {
      case Job::Next::kEvent:
        if (!cancel_sent && !writer->Write(ev)) cancel(Cancelled("client disconnected"));
        break;
      case Job::Next::kTimeout:
        if (ctx->IsCancelled()) {
          // gRPC cancels the call both when the client cancels and when its deadline passes.
          bool past_deadline = ctx->deadline() <= std::chrono::system_clock::now();
          cancel(past_deadline ? DeadlineExceeded("deadline exceeded; request " + job->id() + " stopped")
                               : Cancelled("cancelled by the client; request " + job->id() + " stopped"));
        }
        break;
      case Job::Next::kDone:
        return finish(final_status);
    }
  }
}

grpc::Status DitServeService::ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                                         v1::ListModelsResponse* resp) {
  *resp = coordinator_.ListModels();
  return grpc::Status::OK;
}

grpc::Status DitServeService::GetServerStatus(grpc::ServerContext*, const v1::GetServerStatusRequest*,
                                              v1::ServerStatus* resp) {
  *resp = coordinator_.GetStatus();
  return grpc::Status::OK;
}

}  // namespace ditserve::server
