#include "support/test_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <vector>

namespace ditserve::testing {

std::string BinDir() { return DITSERVE_BIN_DIR; }
std::string TestBinDir() { return DITSERVE_TEST_BIN_DIR; }
std::string SourceDir() { return DITSERVE_SOURCE_DIR; }
std::string TestModelsDir() {
  const char* env = std::getenv("DITSERVE_TEST_MODELS");
  return env ? env : DITSERVE_TEST_MODELS;
}
std::string PythonExe() { return DITSERVE_PYTHON; }

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

namespace {

// Binds 127.0.0.1:port (0: any) and returns the bound port, or -1 where it is taken.
int BindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

int FreeTcpPort() {
  const int port = BindLoopback(0);
  if (port < 0) throw std::runtime_error("bind failed");
  return port;
}

int FreePortRange(int count) {
  // Below Linux's ephemeral range (32768 and up), where no connection's local port lands: only an explicit bind
  // (another test's range) can take one of these after the check, and a random start makes that unlikely.
  constexpr int kLow = 20000, kHigh = 32768;
  std::mt19937 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int base = kLow + static_cast<int>(rng() % static_cast<unsigned>(kHigh - kLow - count));
    bool free = true;
    for (int p = base; p < base + count && free; ++p) free = BindLoopback(p) == p;
    if (free) return base;
  }
  throw std::runtime_error("no free port range");
}

}  // namespace ditserve::testing
