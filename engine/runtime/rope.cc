#include "engine/runtime/rope.h"

namespace ditserve::runtime {

std::pair<at::Tensor, at::Tensor> RotaryEmbedding(const at::Tensor& ids, const std::vector<int64_t>& axes_dims,
                                                  double theta) {
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) == static_cast<int64_t>(axes_dims.size()),
              "RotaryEmbedding: ids must be [S, ", axes_dims.size(), "], got ", ids.sizes());
  const at::Tensor pos = ids.to(at::kCPU).to(at::kFloat);
  std::vector<at::Tensor> coss, sins;
  for (size_t axis = 0; axis < axes_dims.size(); ++axis) {
    const int64_t dim = axes_dims[axis];
    // 1.0 / (theta ** (arange(0, dim, 2, float64) / dim)); outer(pos, freqs).
    const at::Tensor exponents = at::arange(0, dim, 2, at::kDouble) / dim;
    const at::Tensor freqs = at::reciprocal(at::pow(at::Scalar(theta), exponents));
    const at::Tensor angles = at::outer(pos.select(1, static_cast<int64_t>(axis)), freqs);  // float64 [S, dim/2]
    coss.push_back(angles.cos().repeat_interleave(2, 1).to(at::kFloat));
    sins.push_back(angles.sin().repeat_interleave(2, 1).to(at::kFloat));
  }
  return {at::cat(coss, -1), at::cat(sins, -1)};
}

}  // namespace ditserve::runtime
