// Issue 19, defect 2: the group's c10d TCPStore (hosted by rank 0) listens only on the store host's
// address: loopback for a single-host group, the configured interface otherwise; never on every
// interface without authentication (c10d's own default). Checked from the kernel's socket table
// (/proc/net/tcp and tcp6) while a 2-rank CPU group is up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/cp/mesh.h"
#include "support/multi_rank.h"
#include "support/test_mesh.h"

namespace ditserve::runtime {
namespace {

// The local addresses of the sockets listening on `port` (IPv4 and IPv6), as inet_ntop writes them.
std::vector<std::string> ListeningAddresses(int port) {
  std::vector<std::string> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const size_t colon = local.find(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: TCP_LISTEN
      if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
      // The kernel prints each 32-bit word of the address in host byte order.
      const std::string hex = local.substr(0, colon);
      unsigned char bytes[16];
      for (size_t w = 0; w < hex.size() / 8; ++w) {
        const uint32_t word = static_cast<uint32_t>(std::stoul(hex.substr(w * 8, 8), nullptr, 16));
        std::memcpy(bytes + 4 * w, &word, 4);
      }
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(hex.size() == 8 ? AF_INET : AF_INET6, bytes, text, sizeof(text));
      out.push_back(text);
    }
  }
  return out;
}

bool Connects(const char* ip, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

// Rank 0 writes where its store listens ("listen ADDR" lines) and whether 127.0.0.1:port answers.
int ChildMain(const testing::ChildArgs& a) {
  const std::string store_host = a.args.at(0);
  auto mesh = testing::JoinTestMesh(a.rank, a.port, 1, 2, 1, at::kCPU, store_host);
  if (a.rank == 0) {
    std::ofstream out(a.output);
    for (const std::string& addr : ListeningAddresses(a.port)) out << "listen " << addr << "\n";
    out << "loopback1 " << (Connects("127.0.0.1", a.port) ? "connects" : "refused") << "\n";
  }
  mesh->AnyRank(false);  // the store stays up until rank 0 has looked
  return 0;
}

struct Seen {
  std::vector<std::string> listen;
  std::string loopback1;
};

Seen RunGroup(const std::string& store_host) {
  const std::vector<testing::RankResult> ranks = testing::RunRanks(2, {store_host}, 120);
  Seen seen;
  for (int r = 0; r < 2; ++r) EXPECT_EQ(ranks[r].code, 0) << "rank " << r;
  std::istringstream in(ranks[0].output);
  std::string key, value;
  while (in >> key >> value) {
    if (key == "listen") seen.listen.push_back(value);
    if (key == "loopback1") seen.loopback1 = value;
  }
  return seen;
}

TEST(MeshStore, SingleHostGroupListensOnLoopbackOnly) {
  const Seen seen = RunGroup("127.0.0.1");
  ASSERT_EQ(seen.listen.size(), 1u) << "expected exactly one listening socket on the store port";
  EXPECT_EQ(seen.listen[0], "127.0.0.1") << "the store listens on every interface";
  EXPECT_EQ(seen.loopback1, "connects");
}

// A configured interface (127.0.0.2 stands for a host's private address: every 127/8 address is local on
// Linux) is the only one the store listens on: 127.0.0.1 is refused.
TEST(MeshStore, ConfiguredInterfaceIsTheOnlyOne) {
  const Seen seen = RunGroup("127.0.0.2");
  ASSERT_EQ(seen.listen.size(), 1u);
  EXPECT_EQ(seen.listen[0], "127.0.0.2");
  EXPECT_EQ(seen.loopback1, "refused");
}

}  // namespace
}  // namespace ditserve::runtime

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 1) {
    try {
      return ditserve::runtime::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
