#include "engine/runtime/cfg_plan.h"

#include <algorithm>

#include "engine/runtime/cp/mesh.h"

namespace ditserve::runtime {

StatusOr<CfgPlan> CfgPlan::Make(DeviceMesh* mesh, bool cfg, const std::string& rule) {
  CfgPlan p;
  p.cfg_ = cfg;
  p.parallel_ = mesh != nullptr && mesh->cfg_size() > 1;
  if (p.parallel_ && mesh->cfg_size() != 2) {
    return InvalidArgument("layout.cfg " + std::to_string(mesh->cfg_size()) + " is not allowed; allowed 1, 2");
  }
  if (p.parallel_ && !cfg) {
    return InvalidArgument("this group runs CFG-parallel (cfg=" + std::to_string(mesh->cfg_size()) +
                           "): requests need classifier-free guidance (" + rule + ")");
  }
  if (!p.parallel_ || mesh->cfg_index() == 0) p.branches_.push_back(Branch::kPositive);
  if (cfg && (!p.parallel_ || mesh->cfg_index() == 1)) p.branches_.push_back(Branch::kNegative);
  return p;
}

bool CfgPlan::runs(Branch b) const { return std::find(branches_.begin(), branches_.end(), b) != branches_.end(); }

}  // namespace ditserve::runtime
