#include "engine/runtime/rope.h"

namespace ditserve::runtime {

std::pair<at::Tensor, at::Tensor> RotaryEmbedding(const at::Tensor& ids, const std::vector<int64_t>& axes_dims,
                                                  double theta, at::ScalarType freqs_dtype) {
  TORCH_CHECK(freqs_dtype == at::kDouble || freqs_dtype == at::kFloat, "RotaryEmbedding: freqs_dtype must be ",
              "float64 or float32, got ", freqs_dtype);
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) == static_cast<int64_t>(axes_dims.size()),
              "RotaryEmbedding: ids must be [S, ", axes_dims.size(), "], got ", ids.sizes());
  const at::Tensor pos = ids.to(at::kCPU).to(at::kFloat);
  std::vector<at::Tensor> coss, sins;
  for (size_t axis = 0; axis < axes_dims.size(); ++axis) {
    const int64_t dim = axes_dims[axis];
    // 1.0 / (theta ** (arange(0, dim, 2, freqs_dtype) / dim)); outer(pos, freqs), in freqs_dtype.
    const at::Tensor exponents = at::arange(0, dim, 2, freqs_dtype) / dim;
    const at::Tensor freqs = at::reciprocal(at::pow(at::Scalar(theta), exponents));
    const at::Tensor angles = at::outer(pos.select(1, static_cast<int64_t>(axis)).to(freqs_dtype), freqs);
    coss.push_back(angles.cos().repeat_interleave(2, 1).to(at::kFloat));
    sins.push_back(angles.sin().repeat_interleave(2, 1).to(at::kFloat));
  }
  return {at::cat(coss, -1), at::cat(sins, -1)};
}

}  // namespace ditserve::runtime
