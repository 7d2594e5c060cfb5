// The public ditserve.v1 gRPC service: a thin edge over the Coordinator.
#pragma once

#include <array>
#include <string>

#include <grpcpp/grpcpp.h>

#include "ditserve/v1/ditserve.grpc.pb.h"
#include "server/api_keys.h"
#include "server/coordinator.h"
#include "server/rate_limited_log.h"

namespace ditserve::server {

// Registered by hand rather than through v1::DitServe::Service so that Generate receives the request's
// wire bytes and decodes them itself (server/request_decode.h): malformed requests then get a clear
// INVALID_ARGUMENT and are counted. Method names and types are those of v1::DitServe, so clients and
// server reflection see the same service.
class DitServeService final : public grpc::Service {
 public:
  // `keys` null: no authentication (every caller is admin).
  DitServeService(Coordinator& coordinator, const ApiKeys* keys);

  grpc::Status Generate(grpc::ServerContext* ctx, const grpc::ByteBuffer* wire,
                        grpc::ServerWriter<v1::GenerateEvent>* writer);
  grpc::Status ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest* req, v1::ListModelsResponse* resp);
  grpc::Status GetServerStatus(grpc::ServerContext* ctx, const v1::GetServerStatusRequest* req,
                               v1::ServerStatus* resp);

 private:
  // The one authentication check: the bearer token in the call's metadata against the keys.
  // UNAUTHENTICATED without a valid key, PERMISSION_DENIED when its role is below `needed`.
  grpc::Status Authorize(grpc::ServerContext* ctx, Role needed, const char* method, Role* role);

  Coordinator& coordinator_;
  const ApiKeys* const keys_;
  RateLimitedLog auth_log_;
  std::array<std::string, 3> method_names_;  // Generate, ListModels, GetServerStatus: the proto's order
  RateLimitedLog bad_request_log_;
};

}  // namespace ditserve::server
