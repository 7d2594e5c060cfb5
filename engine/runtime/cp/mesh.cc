#include "engine/runtime/cp/mesh.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace ditserve::runtime {
namespace {

// The TCPStore server's listening socket, bound to store_host only. c10d's TCPStore binds the wildcard
// address (every interface, no authentication) and has no bind-address option, but it takes over a
// socket we bound (TCPStoreOptions::masterListenFd, both its libuv and legacy backends). SO_REUSEADDR as
// c10d sets it: a restarted group reuses its port while the old connections sit in TIME_WAIT.
int ListenOnStoreHost(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    TORCH_CHECK(false, "store host ", host, ": ", gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
  const int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  TORCH_CHECK(fd >= 0, "store socket: ", std::strerror(errno));
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    close(fd);
    TORCH_CHECK(false, "cannot listen on store address ", host, ":", port, ": ", std::strerror(err));
  }
  return fd;
}

c10::intrusive_ptr<c10d::Backend> MakeGloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                           const MeshOptions& o) {
  auto opts = c10d::ProcessGroupGloo::Options::create(o.timeout);
  // Gloo's pair sockets on the same interface as the store (loopback for a single-host group), never the
  // address the host name resolves to.
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.store_host));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}

c10::intrusive_ptr<c10d::Backend> MakeBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                              const MeshOptions& o) {
  if (o.device.is_cuda()) {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = o.timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
    TORCH_CHECK(false, "this build of ditserve has no NCCL: multi-rank CUDA groups are unavailable");
#endif
  }
  return MakeGloo(store, rank, size, o);
}

}  // namespace

Status CheckUlyssesDividesHeads(const DeviceMesh* mesh, int num_heads) {
  const int ulysses = mesh != nullptr ? mesh->ulysses_size() : 1;
  if (ulysses > 1 && num_heads % ulysses != 0) {
    return InvalidArgument("ulysses=" + std::to_string(ulysses) + " must divide the transformer's " +
                           std::to_string(num_heads) + " attention heads");
  }
  return Status::Ok();
}

StatusOr<std::shared_ptr<DeviceMesh>> DeviceMesh::Create(const MeshOptions& o) {
  const int world = o.cfg * o.ulysses * o.ring;
  if (o.cfg < 1 || o.ulysses < 1 || o.ring < 1) return InvalidArgument("mesh axes must be >= 1");
  if (o.rank < 0 || o.rank >= world) return InvalidArgument("rank outside the mesh");
  if (o.store_port <= 0 || o.store_port > 65535) {
    return InvalidArgument("multi-rank group needs a TCPStore port in 1..65535, got " + std::to_string(o.store_port));
  }
  std::shared_ptr<DeviceMesh> mesh(new DeviceMesh());
  mesh->rank_ = o.rank;
  mesh->cfg_ = o.cfg;
  mesh->ulysses_ = o.ulysses;
  mesh->ring_ = o.ring;
  mesh->device_ = o.device;
  try {
#ifdef USE_C10D_NCCL
    if (o.device.is_cuda()) c10::cuda::set_device(o.device.index());
#endif
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.store_port);
    so.isServer = o.rank == 0;
    so.numWorkers = world;
    so.waitWorkers = true;
    so.timeout = o.timeout;
    // The store owns the socket from here (it closes it).
    if (so.isServer) so.masterListenFd = ListenOnStoreHost(o.store_host, o.store_port);
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(o.store_host, so);

    // The group along the axes `vary` (others fixed to this rank's coordinates), in ascending rank order.
    const int c = mesh->cfg_index(), u = mesh->ulysses_index(), r = mesh->ring_index();
    auto world_rank = [&](int ci, int ui, int ri) { return (ci * o.ulysses + ui) * o.ring + ri; };
    auto make = [&](const std::string& name, bool vary_c, bool vary_u, bool vary_r,
                    bool control) -> std::unique_ptr<Communicator> {
      std::vector<int> members;
      for (int ci = 0; ci < o.cfg; ++ci)
        for (int ui = 0; ui < o.ulysses; ++ui)
          for (int ri = 0; ri < o.ring; ++ri)
            if ((vary_c || ci == c) && (vary_u || ui == u) && (vary_r || ri == r)) members.push_back(world_rank(ci, ui, ri));
      if (members.size() < 2) return nullptr;
      int my = 0;
      std::string key = name;
      for (size_t i = 0; i < members.size(); ++i) {
        if (members[i] == o.rank) my = static_cast<int>(i);
        key += "_" + std::to_string(members[i]);
      }
      auto prefixed = c10::make_intrusive<c10d::PrefixStore>(key, store);
      const int size = static_cast<int>(members.size());
      auto backend = control ? MakeGloo(prefixed, my, size, o) : MakeBackend(prefixed, my, size, o);
      return std::make_unique<Communicator>(name, std::move(backend), std::move(members));
    };
    mesh->world_comm_ = make("world", true, true, true, false);
    mesh->control_comm_ = make("control", true, true, true, true);
    mesh->cfg_comm_ = make("cfg", true, false, false, false);
    mesh->ulysses_comm_ = make("ulysses", false, true, false, false);
    mesh->ring_comm_ = make("ring", false, false, true, false);
    mesh->seq_comm_ = make("sequence", false, true, true, false);
  } catch (const c10::Error& e) {
    return Unavailable("joining the group's mesh (rank " + std::to_string(o.rank) + ", store " + o.store_host + ":" +
                       std::to_string(o.store_port) + "): " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Unavailable("joining the group's mesh (rank " + std::to_string(o.rank) + "): " + e.what());
  }
  return mesh;
}

bool DeviceMesh::AnyRank(bool vote) {
  if (!control_comm_) return vote;
  at::Tensor flag = at::full({1}, vote ? 1 : 0, at::kInt);
  control_comm_->AllReduceSync(flag, c10d::ReduceOp::MAX);
  return flag.item<int>() != 0;
}

std::string DeviceMesh::Describe() const {
  return "rank " + std::to_string(rank_) + "/" + std::to_string(world_size()) + " cfg" + std::to_string(cfg_) +
         "xulysses" + std::to_string(ulysses_) + "xring" + std::to_string(ring_) + " (c=" +
         std::to_string(cfg_index()) + ", u=" + std::to_string(ulysses_index()) + ", r=" + std::to_string(ring_index()) +
         ")";
}

}  // namespace ditserve::runtime
