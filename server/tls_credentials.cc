#include "server/tls_credentials.h"

#include <fstream>
#include <sstream>

#include <grpcpp/security/credentials.h>

namespace ditserve::server {

StatusOr<std::string> ReadPemFile(const std::string& key, const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(key + ": cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN ") == std::string::npos) return InvalidArgument(key + ": " + path + " is not PEM");
  return ss.str();
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions opts;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.private_key, ReadPemFile("server.tls.key_file", tls.key_file));
  ASSIGN_OR_RETURN(pair.cert_chain, ReadPemFile("server.tls.cert_file", tls.cert_file));
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(opts.pem_root_certs, ReadPemFile("server.tls.client_ca_file", tls.client_ca_file));
    opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

}  // namespace ditserve::server
