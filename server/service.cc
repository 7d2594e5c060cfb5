#include "server/service.h"

#include <grpcpp/support/method_handler.h>

#include "server/echo.h"
#include "server/grpc_status.h"
#include "server/request_decode.h"

namespace ditserve::server {
namespace {

// Why the call ended from the client's side. gRPC cancels the call both when the client cancels and when
// its deadline passes, and a failed write means one of the two (or a broken connection).
Status ClientGone(grpc::ServerContext* ctx, const std::string& request_id) {
  // The deadline is converted from gRPC's monotonic clock to the system clock, so allow a little skew.
  const auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max() &&
      deadline <= std::chrono::system_clock::now() + std::chrono::milliseconds(50)) {
    return DeadlineExceeded("deadline exceeded; request " + request_id + " stopped");
  }
  return Cancelled("cancelled by the client; request " + request_id + " stopped");
}

}  // namespace

DitServeService::DitServeService(Coordinator& coordinator, const ApiKeys* keys)
    : coordinator_(coordinator), keys_(keys) {
  // The names come from the proto's descriptor; gRPC keeps their pointers, so they live in this object.
  const auto* service = v1::GenerateRequest::descriptor()->file()->FindServiceByName("DitServe");
  for (size_t i = 0; i < method_names_.size(); ++i) method_names_[i] = "/" + service->full_name() + "/" + service->method(static_cast<int>(i))->name();
  // The handler classes are those the generated code uses (grpcpp/support/method_handler.h).
  AddMethod(new grpc::internal::RpcServiceMethod(
      method_names_[0].c_str(), grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<DitServeService, grpc::ByteBuffer, v1::GenerateEvent>(
          [](DitServeService* s, grpc::ServerContext* ctx, const grpc::ByteBuffer* req,
             grpc::ServerWriter<v1::GenerateEvent>* writer) { return s->Generate(ctx, req, writer); },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      method_names_[1].c_str(), grpc::internal::RpcMethod::NORMAL_RPC,
      new grpc::internal::RpcMethodHandler<DitServeService, v1::ListModelsRequest, v1::ListModelsResponse,
                                           grpc::protobuf::MessageLite, grpc::protobuf::MessageLite>(
          [](DitServeService* s, grpc::ServerContext* ctx, const v1::ListModelsRequest* req,
             v1::ListModelsResponse* resp) { return s->ListModels(ctx, req, resp); },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      method_names_[2].c_str(), grpc::internal::RpcMethod::NORMAL_RPC,
      new grpc::internal::RpcMethodHandler<DitServeService, v1::GetServerStatusRequest, v1::ServerStatus,
                                           grpc::protobuf::MessageLite, grpc::protobuf::MessageLite>(
          [](DitServeService* s, grpc::ServerContext* ctx, const v1::GetServerStatusRequest* req,
             v1::ServerStatus* resp) { return s->GetServerStatus(ctx, req, resp); },
          this)));
}

grpc::Status DitServeService::Authorize(grpc::ServerContext* ctx, Role needed, const char* method, Role* role) {
  *role = Role::kAdmin;
  if (!keys_) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (it == md.end() || it->second.size() <= kBearer.size() ||
      std::string_view(it->second.data(), kBearer.size()) != kBearer) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing API key: send call metadata \"authorization: Bearer KEY\"");
  }
  const std::string key(it->second.data() + kBearer.size(), it->second.size() - kBearer.size());
  auto found = keys_->Lookup(key);
  if (!found) {
    auth_log_.Warn("unknown API key from " + Echo(ctx->peer()) + " (" + method + ")");  // never the key
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown API key");
  }
  *role = *found;
  if (*found < needed) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string("this API key's role may not call ") + method + " (needs role user)");
  }
  return grpc::Status::OK;
}

grpc::Status DitServeService::Generate(grpc::ServerContext* ctx, const grpc::ByteBuffer* wire,
                                       grpc::ServerWriter<v1::GenerateEvent>* writer) {
  const auto start = Clock::now();
  // Metrics label requests by the model that served them; anything else shares one label, so clients
  // cannot create series (defect: unknown names once grew /metrics without bound).
  std::string model = kInvalidModelLabel;
  auto finish = [&](const Status& s) {
    coordinator_.metrics().RequestFinished(model, StatusCodeName(s.code()),
                                           std::chrono::duration<double>(Clock::now() - start).count());
    return ToGrpc(s);
  };
  Role role;
  if (grpc::Status auth = Authorize(ctx, Role::kUser, "Generate", &role); !auth.ok()) {
    const bool unauthenticated = auth.error_code() == grpc::StatusCode::UNAUTHENTICATED;
    coordinator_.metrics().RequestFinished(model, unauthenticated ? "UNAUTHENTICATED" : "PERMISSION_DENIED",
                                           std::chrono::duration<double>(Clock::now() - start).count());
    return auth;
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!wire->Dump(&slices).ok()) return finish(InvalidArgument("request: unreadable message"));
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  auto req = DecodeGenerateRequest(bytes);
  if (!req.ok()) {
    bad_request_log_.Warn("rejected a Generate request from " + Echo(ctx->peer()) + ": " + req.status().message());
    return finish(req.status());
  }
  model = coordinator_.ModelLabel(*req);
  auto submitted = coordinator_.Submit(*req);
  if (!submitted.ok()) return finish(submitted.status());
  std::shared_ptr<Job> job = *submitted;

  bool cancel_sent = false;
  auto cancel = [&] {
    if (cancel_sent) return;
    cancel_sent = true;
    coordinator_.Cancel(job, ClientGone(ctx, job->id()));
  };
  while (true) {
    v1::GenerateEvent ev;
    Status final_status;
    switch (job->WaitNext(&ev, &final_status, std::chrono::milliseconds(100))) {
      case Job::Next::kEvent:
        if (!cancel_sent && !writer->Write(ev)) cancel();
        break;
      case Job::Next::kTimeout:
        if (ctx->IsCancelled()) cancel();
        break;
      case Job::Next::kDone:
        return finish(final_status);
    }
  }
}

grpc::Status DitServeService::ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest*,
                                         v1::ListModelsResponse* resp) {
  Role role;
  if (grpc::Status auth = Authorize(ctx, Role::kReadOnly, "ListModels", &role); !auth.ok()) return auth;
  *resp = coordinator_.ListModels();
  return grpc::Status::OK;
}

grpc::Status DitServeService::GetServerStatus(grpc::ServerContext* ctx, const v1::GetServerStatusRequest*,
                                              v1::ServerStatus* resp) {
  Role role;
  if (grpc::Status auth = Authorize(ctx, Role::kReadOnly, "GetServerStatus", &role); !auth.ok()) return auth;
  *resp = coordinator_.GetStatus();
  if (role < Role::kAdmin) {
    // Worker pids and devices describe the host: for admins only.
    for (auto& g : *resp->mutable_groups()) {
      g.clear_pids();
      g.clear_devices();
    }
  }
  return grpc::Status::OK;
}

}  // namespace ditserve::server
