// gRPC server credentials from server.tls: TLS with the server's certificate, and mutual TLS (a client
// certificate signed by client_ca_file required) when client_ca_file is set; insecure when TLS is off.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "ditserve/status.h"
#include "server/config.h"

namespace ditserve::server {

// A PEM file's text; errors name the config key and the path.
StatusOr<std::string> ReadPemFile(const std::string& key, const std::string& path);

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsConfig& tls);

}  // namespace ditserve::server
