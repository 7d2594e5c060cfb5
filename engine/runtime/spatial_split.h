// Row-split ("spatial") parallelism for VAE decoders: the ranks of a group each decode a contiguous
// range of the latent's rows and the image rows are gathered back (docs/architecture.md, "Parallel VAE
// decode"). The decoder's row-coupled ops (spatial_ops.h) read the process-wide SpatialSplit while one
// is installed (SpatialSplitGuard) and are the plain single-rank ops otherwise.
//
// Invariant the ops rely on: along the split axis, rank r's piece of every tensor inside the decoder has
// rows[r] * m elements, with m the same on every rank (nearest upsampling multiplies it, flattening rows
// with columns multiplies it by the width). So each rank knows every other rank's extent without asking.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace ditserve::runtime {

class Communicator;

// Near-equal contiguous ranges: rank r gets total / parts rows, plus one for r < total % parts.
struct RowSplit {
  std::vector<int64_t> rows;
  int parts() const { return static_cast<int>(rows.size()); }
  int64_t begin(int r) const;
};
RowSplit SplitRows(int64_t total, int parts);  // needs 1 <= parts <= total

struct SpatialSplit {
  Communicator* comm = nullptr;  // group rank r holds split.rows[r]
  RowSplit split;                // input (latent) rows per rank

  int rank() const;
  int size() const { return split.parts(); }
  // Extent on rank r of a tensor whose extent along the split axis is `local` on this rank.
  int64_t Extent(int r, int64_t local) const;
};

// The installed split, or null (single-rank semantics).
const SpatialSplit* CurrentSpatialSplit();

// Installs `split` for this process for the guard's lifetime (one decode), then restores the previous.
class SpatialSplitGuard {
 public:
  explicit SpatialSplitGuard(const SpatialSplit* split);
  ~SpatialSplitGuard();
  SpatialSplitGuard(const SpatialSplitGuard&) = delete;
  SpatialSplitGuard& operator=(const SpatialSplitGuard&) = delete;

 private:
  const SpatialSplit* previous_;
};

// Every rank's piece of a row-split tensor concatenated along `dim` in rank order, on every rank (one
// all-gather; uneven pieces are padded to the largest and trimmed).
at::Tensor GatherRows(const SpatialSplit& split, const at::Tensor& local, int64_t dim);

// Runs `fn` on this rank's rows (along `dim`) of `input` with the split installed and returns the
// gathered output on every rank: equal to fn(input) up to float summation order when fn's row-coupled
// ops are split-aware. Without a multi-rank `comm`, or with fewer rows than ranks, every rank returns
// fn(input).
at::Tensor RunSplitByRows(Communicator* comm, const at::Tensor& input, int64_t dim,
                          const std::function<at::Tensor(const at::Tensor&)>& fn);

}  // namespace ditserve::runtime
