// Joining a group's mesh from a multi-process test's child (one process per rank). Header-only: only
// torch-linked tests include it.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include <ATen/Parallel.h>

#include "engine/runtime/cp/mesh.h"

namespace ditserve::testing {

// One intra-op thread per rank (the ranks share the machine's cores) and a minute for the rendezvous;
// throws with the mesh's error message.
inline std::shared_ptr<runtime::DeviceMesh> JoinTestMesh(int rank, int port, int cfg, int ulysses, int ring,
                                                               at::Device device = at::kCPU,
                                                               const std::string& store_host = "127.0.0.1") {
  if (device.is_cpu()) at::set_num_threads(1);
  runtime::MeshOptions mo;
  mo.rank = rank;
  mo.cfg = cfg;
  mo.ulysses = ulysses;
  mo.ring = ring;
  mo.store_host = store_host;
  mo.store_port = port;
  mo.device = device;
  mo.timeout = std::chrono::seconds(120);
  auto mesh = runtime::DeviceMesh::Create(mo);
  if (!mesh.ok()) throw std::runtime_error("rank " + std::to_string(rank) + ": " + mesh.status().ToString());
  return *mesh;
}

}  // namespace ditserve::testing
