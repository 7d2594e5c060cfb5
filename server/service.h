// The public ditserve.v1 gRPC service: a thin edge over the Coordinator.
#pragma once

#include "ditserve/v1/ditserve.grpc.pb.h"
#include "server/coordinator.h"

namespace ditserve::server {

class DitServeService final : public v1::DitServe::Service {
 public:
  explicit DitServeService(Coordinator& coordinator) : coordinator_(coordinator) {}

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateEvent>* writer) override;
  grpc::Status ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest* req,
                          v1::ListModelsResponse* resp) override;
  grpc::Status GetServerStatus(grpc::ServerContext* ctx, const v1::GetServerStatusRequest* req,
                               v1::ServerStatus* resp) override;

 private:
  Coordinator& coordinator_;
};

}  // namespace ditserve::server
