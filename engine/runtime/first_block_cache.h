// First Block Cache (ParaAttention's FBCache rule): each step runs the transformer's first block; if
// its output residual changed little since the last fully computed step, the remaining blocks are
// skipped and their cached residuals added instead.
//
//   diff = sum |r1 - r1_prev| / sum |r1_prev|   (r1 = first block's residual of the image stream,
//                                                r1_prev = the one of the last computed step)
//   skip  iff  step >= warmup_steps  and  diff < threshold  and  consecutive skips < cap (0 = no cap)
//
// The sums run over real tokens only (sequence padding masked) and over every branch of the step (CFG)
// and are all-reduced over the whole group before the host compares them with the threshold, so every
// rank takes the same branch. Differences from ParaAttention: the two CFG branches share one decision
// (ParaAttention's buffers are per transformer call), and warm-up steps and a skip cap are available.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "engine/runtime/cp/communicator.h"

namespace ditserve::runtime {

struct FirstBlockCacheOptions {
  double threshold = 0.0;         // 0 = off
  int64_t warmup_steps = 1;       // always computed (the first step has nothing to compare with)
  int64_t max_consecutive_skips = 0;  // 0 = no cap
};

class FirstBlockCache {
 public:
  // `group`: the communicator spanning every rank of the request (null on one rank).
  FirstBlockCache(FirstBlockCacheOptions options, Communicator* group, int branches);

  bool enabled() const { return options_.threshold > 0.0; }

  // Step protocol: for each branch, Observe(branch, r1, valid) with the first block's residual
  // [B, S, C] and a bool [S] mask of real tokens (undefined = all real); then Decide(step) once (a
  // collective on multi-rank groups); then per branch either Apply (skip) or Store (computed).
  void Observe(int branch, const at::Tensor& first_residual, const at::Tensor& valid);
  bool Decide(int64_t step);
  // streams after the first block + the cached residuals of the remaining blocks.
  std::vector<at::Tensor> Apply(int branch, const std::vector<at::Tensor>& after_first) const;
  // Records the remaining blocks' residuals (final - after_first) of a computed step.
  void Store(int branch, const std::vector<at::Tensor>& after_first, const std::vector<at::Tensor>& final_streams);

  int64_t skipped() const { return skipped_; }
  double last_diff() const { return last_diff_; }
  const std::vector<bool>& decisions() const { return decisions_; }

 private:
  struct Branch {
    at::Tensor prev_r1, r1, valid;
    std::vector<at::Tensor> residuals;
  };
  FirstBlockCacheOptions options_;
  Communicator* group_;
  std::vector<Branch> branches_;
  int64_t consecutive_ = 0, skipped_ = 0;
  double last_diff_ = -1;
  std::vector<bool> decisions_;  // per step: true = skipped
};

}  // namespace ditserve::runtime
