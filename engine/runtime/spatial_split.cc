#include "engine/runtime/spatial_split.h"

#include <algorithm>
#include <atomic>

#include <ATen/ATen.h>

#include "engine/runtime/cp/communicator.h"

namespace ditserve::runtime {
namespace {

// Process-wide like the attention backend (one process serves one group, one job at a time); atomic
// because the guard's thread need not be the thread the TorchScript interpreter runs the ops on.
std::atomic<const SpatialSplit*> g_split{nullptr};

}  // namespace

int64_t RowSplit::begin(int r) const {
  int64_t b = 0;
  for (int i = 0; i < r; ++i) b += rows[i];
  return b;
}

RowSplit SplitRows(int64_t total, int parts) {
  TORCH_CHECK(parts >= 1 && total >= parts, "SplitRows: cannot give each of ", parts, " ranks a row of ", total);
  RowSplit s;
  for (int r = 0; r < parts; ++r) s.rows.push_back(total / parts + (r < total % parts ? 1 : 0));
  return s;
}

int SpatialSplit::rank() const { return comm->rank(); }

int64_t SpatialSplit::Extent(int r, int64_t local) const {
  const int64_t mine = split.rows[rank()];
  TORCH_CHECK(local % mine == 0, "spatial split: local extent ", local, " is not a multiple of this rank's ", mine,
              " input rows (an op changed the row layout)");
  return split.rows[r] * (local / mine);
}

const SpatialSplit* CurrentSpatialSplit() { return g_split.load(std::memory_order_acquire); }

SpatialSplitGuard::SpatialSplitGuard(const SpatialSplit* split)
    : previous_(g_split.exchange(split, std::memory_order_acq_rel)) {
  TORCH_CHECK(split == nullptr || (split->comm != nullptr && split->comm->size() == split->size()),
              "SpatialSplitGuard: the split's ranks and the communicator's differ");
}

SpatialSplitGuard::~SpatialSplitGuard() { g_split.store(previous_, std::memory_order_release); }

at::Tensor GatherRows(const SpatialSplit& split, const at::Tensor& local, int64_t dim) {
  dim = at::maybe_wrap_dim(dim, local.dim());
  const int64_t n = local.size(dim);
  std::vector<int64_t> extents;
  for (int r = 0; r < split.size(); ++r) extents.push_back(split.Extent(r, n));
  const int64_t widest = *std::max_element(extents.begin(), extents.end());
  at::Tensor padded = local;
  if (n < widest) {
    std::vector<int64_t> pad_shape(local.sizes().begin(), local.sizes().end());
    pad_shape[dim] = widest - n;
    padded = at::cat({local, at::zeros(pad_shape, local.options())}, dim);
  }
  at::Tensor all = split.comm->AllGatherSync(padded);  // [ranks, ...]
  std::vector<at::Tensor> pieces;
  for (int r = 0; r < split.size(); ++r) pieces.push_back(all.select(0, r).narrow(dim, 0, extents[r]));
  return at::cat(pieces, dim);
}

at::Tensor RunSplitByRows(Communicator* comm, const at::Tensor& input, int64_t dim,
                          const std::function<at::Tensor(const at::Tensor&)>& fn) {
  dim = at::maybe_wrap_dim(dim, input.dim());
  if (comm == nullptr || comm->size() < 2 || input.size(dim) < comm->size()) return fn(input);
  SpatialSplit split{comm, SplitRows(input.size(dim), comm->size())};
  const int me = comm->rank();
  const at::Tensor mine = input.narrow(dim, split.split.begin(me), split.split.rows[me]).contiguous();
  at::Tensor out;
  {
    SpatialSplitGuard guard(&split);
    out = fn(mine);
  }
  return GatherRows(split, out, dim);
}

}  // namespace ditserve::runtime
