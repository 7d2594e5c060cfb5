#include "engine/runtime/first_block_cache.h"

namespace ditserve::runtime {

FirstBlockCache::FirstBlockCache(FirstBlockCacheOptions options, Communicator* group, int branches)
    : options_(options), group_(group), branches_(branches) {}

void FirstBlockCache::Observe(int branch, const at::Tensor& first_residual, const at::Tensor& valid) {
  Branch& b = branches_.at(branch);
  b.r1 = first_residual;
  b.valid = valid;
}

bool FirstBlockCache::Decide(int64_t step) {
  bool skip = false;
  bool comparable = step >= options_.warmup_steps;
  for (const Branch& b : branches_) comparable = comparable && b.prev_r1.defined() && !b.residuals.empty();
  if (comparable) {
    // [sum |r1 - prev|, sum |prev|] over real tokens and branches, then over the group.
    at::Tensor sums = at::zeros({2}, branches_[0].r1.options().dtype(at::kFloat));
    for (const Branch& b : branches_) {
      at::Tensor diff = (b.r1.to(at::kFloat) - b.prev_r1.to(at::kFloat)).abs();
      at::Tensor base = b.prev_r1.to(at::kFloat).abs();
      if (b.valid.defined()) {
        const at::Tensor w = b.valid.to(at::kFloat).view({1, -1, 1});
        diff = diff * w;
        base = base * w;
      }
      sums = sums + at::stack({diff.sum(), base.sum()});
    }
    if (group_ != nullptr) group_->AllReduceSync(sums);
    const at::Tensor host = sums.to(at::kCPU);  // the host must see it to choose the branch
    const double num = host[0].item<double>(), den = host[1].item<double>();
    last_diff_ = den > 0 ? num / den : 0.0;
    const bool capped = options_.max_consecutive_skips > 0 && consecutive_ >= options_.max_consecutive_skips;
    skip = last_diff_ < options_.threshold && !capped;
  }
  if (skip) {
    ++consecutive_;
    ++skipped_;
  } else {
    consecutive_ = 0;
    for (Branch& b : branches_) b.prev_r1 = b.r1;  // the base moves only on computed steps
  }
  for (Branch& b : branches_) b.r1 = at::Tensor();
  decisions_.push_back(skip);
  return skip;
}

std::vector<at::Tensor> FirstBlockCache::Apply(int branch, const std::vector<at::Tensor>& after_first) const {
  const Branch& b = branches_.at(branch);
  TORCH_CHECK(b.residuals.size() == after_first.size(), "FirstBlockCache: stream count changed");
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < after_first.size(); ++i) out.push_back(after_first[i] + b.residuals[i]);
  return out;
}

void FirstBlockCache::Store(int branch, const std::vector<at::Tensor>& after_first,
                            const std::vector<at::Tensor>& final_streams) {
  Branch& b = branches_.at(branch);
  b.residuals.clear();
  for (size_t i = 0; i < after_first.size(); ++i) b.residuals.push_back(final_streams[i] - after_first[i]);
}

}  // namespace ditserve::runtime
