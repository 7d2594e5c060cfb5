// Which classifier-free-guidance branches one rank of a group evaluates for a request. Without CFG every
// rank runs the positive (conditional) branch; with CFG a rank runs both (positive first), unless the
// group is CFG-parallel (cfg = 2): then cfg rank 0 runs the positive branch and cfg rank 1 the negative one,
// and the two predictions are exchanged once per step (the denoise loop does that).
#pragma once

#include <string>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::runtime {

class DeviceMesh;

enum class Branch { kPositive, kNegative };

class CfgPlan {
 public:
  // `cfg`: the request uses classifier-free guidance (the family's rule, e.g. FLUX: true_cfg_scale > 1 and a
  // negative prompt). A CFG-parallel group refuses requests without it: `rule` says what such a request needs
  // (named in the INVALID_ARGUMENT message).
  static StatusOr<CfgPlan> Make(DeviceMesh* mesh, bool cfg, const std::string& rule);

  bool cfg() const { return cfg_; }
  bool parallel() const { return parallel_; }
  // The branches this rank evaluates, in order.
  const std::vector<Branch>& branches() const { return branches_; }
  bool runs(Branch b) const;

 private:
  bool cfg_ = false, parallel_ = false;
  std::vector<Branch> branches_;
};

}  // namespace ditserve::runtime
