#include "engine/runtime/denoise_loop.h"

#include <algorithm>
#include <cstdio>

#include "engine/runtime/cp/mesh.h"
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
#include "engine/runtime/cuda_graph_cache.h"
#endif

namespace ditserve::runtime {
namespace {

// One evaluation per step of one branch, or of all of a rank's branches batched together.
struct Evaluation {
  std::vector<int> branches;  // denoiser branch indices, in batch order
};

TensorList BatchInputs(Denoiser& d, const Evaluation& e, int64_t step, const std::vector<int64_t>& batch_dims) {
  if (e.branches.size() == 1) return d.Inputs(e.branches[0], step);
  std::vector<TensorList> per_branch;
  for (int b : e.branches) per_branch.push_back(d.Inputs(b, step));
  TensorList out = per_branch[0];
  TORCH_CHECK(out.size() == batch_dims.size(), "denoiser: ", out.size(), " inputs but ", batch_dims.size(),
              " batch dims");
  for (size_t k = 0; k < out.size(); ++k) {
    if (batch_dims[k] < 0 || !out[k].defined()) continue;
    TensorList parts;
    for (const TensorList& in : per_branch) parts.push_back(in[k]);
    out[k] = at::cat(parts, batch_dims[k]);
  }
  return out;
}

at::Tensor BatchLatents(const at::Tensor& latents, const Evaluation& e) {
  return e.branches.size() == 1 ? latents : at::cat(TensorList(e.branches.size(), latents), 0);
}

// A bool input is an attention key mask. Attention then finds each row's real keys on the host and runs the fast
// unmasked kernel on them (KeyCompaction); a capture cannot sync, so it would bake in SDPA's masked kernel instead
// (about half as fast: it made Mochi's served step 38% slower when compaction was off). Masked evaluations are the
// video models' seconds-long steps, where a graph saves nothing: they run eagerly.
bool HasKeyMask(const TensorList& in) {
  return std::any_of(in.begin(), in.end(),
                     [](const at::Tensor& t) { return t.defined() && t.scalar_type() == at::kBool; });
}

// Forward, replayed from a CUDA graph when the loop has one and no key mask is given. The graph's inputs are the
// defined tensors; absent optional inputs stay absent in the replayed function (they are part of the signature
// by count).
at::Tensor Full(Denoiser& d, const at::Tensor& latents, const TensorList& in, CudaGraphCache* graphs) {
#ifdef DITSERVE_HAVE_CUDA_GRAPHS
  if (graphs != nullptr && graphs->enabled() && !HasKeyMask(in)) {
    TensorList flat{latents};
    std::vector<bool> present;
    for (const at::Tensor& t : in) {
      present.push_back(t.defined());
      if (t.defined()) flat.push_back(t);
    }
    try {
      return graphs->Run(d.GraphKey(), flat, [&d, present](const TensorList& flat) {
        TensorList inputs;
        size_t next = 1;
        for (bool p : present) inputs.push_back(p ? flat[next++] : at::Tensor());
        return d.Forward(flat[0], inputs);
      });
    } catch (const c10::Error& e) {
      // A model the graph cannot capture still serves, eagerly (on a group the eager path issues the same
      // collectives in the same order as a replay). stderr: spdlog's fmt clashes with torch's bundled fmt.
      std::fprintf(stderr, "CUDA graph capture failed, running eagerly from now on: %s\n", e.what_without_backtrace());
      graphs->Disable();
    }
  }
#else
  (void)graphs;
#endif
  return d.Forward(latents, in);
}

}  // namespace

bool AgreeCancelled(DeviceMesh* mesh, JobControl& control) {
  return mesh != nullptr ? mesh->AnyRank(control.Cancelled()) : control.Cancelled();
}

StatusOr<DenoiseResult> Denoise(Denoiser& denoiser, Scheduler& scheduler, at::Tensor latents, const CfgPlan& plan,
                                DeviceMesh* mesh, JobControl& control, const DenoiseOptions& options) {
  const int branches = denoiser.num_branches();
  if (branches != static_cast<int>(plan.branches().size())) {
    return Internal("denoiser prepared " + std::to_string(branches) + " branches, the CFG plan has " +
                    std::to_string(plan.branches().size()));
  }
  if (plan.cfg() && !options.guidance.scale) return Internal("CFG without a guidance scale");
  std::vector<Evaluation> evals;
  if (options.batch_branches && branches > 1) {
    evals.push_back({});
    for (int b = 0; b < branches; ++b) evals[0].branches.push_back(b);
  } else {
    for (int b = 0; b < branches; ++b) evals.push_back({{b}});
  }
  const std::vector<int64_t> batch_dims = denoiser.InputBatchDims();
  const at::ScalarType latent_dtype = latents.scalar_type();
  const int64_t batch = latents.size(0);

  FirstBlockCache cache(options.cache, mesh != nullptr ? mesh->world() : nullptr, static_cast<int>(evals.size()));
  const at::Tensor valid = cache.enabled() ? denoiser.ResidualValidTokens() : at::Tensor();
  const int64_t n = scheduler.num_inference_steps();
  DenoiseResult out;
  for (int64_t i = 0; i < n; ++i) {
    if (AgreeCancelled(mesh, control)) {
      return Cancelled("cancelled before step " + std::to_string(i + 1) + " of " + std::to_string(n));
    }
    std::vector<TensorList> inputs;
    std::vector<at::Tensor> lat;
    for (const Evaluation& e : evals) {
      inputs.push_back(BatchInputs(denoiser, e, i, batch_dims));
      lat.push_back(BatchLatents(latents, e));
    }
    std::vector<at::Tensor> preds(evals.size());
    if (!cache.enabled()) {
      for (size_t e = 0; e < evals.size(); ++e) preds[e] = Full(denoiser, lat[e], inputs[e], options.graphs);
    } else {
      std::vector<Denoiser::FirstBlock> first;
      for (size_t e = 0; e < evals.size(); ++e) {
        first.push_back(denoiser.First(lat[e], inputs[e]));
        cache.Observe(static_cast<int>(e), first.back().residual, valid);
      }
      const bool skip = cache.Decide(i);
      for (size_t e = 0; e < evals.size(); ++e) {
        TensorList streams;
        if (skip) {
          streams = cache.Apply(static_cast<int>(e), first[e].streams);
        } else {
          streams = denoiser.Rest(first[e].streams, inputs[e]);
          cache.Store(static_cast<int>(e), first[e].streams, streams);
        }
        preds[e] = denoiser.Head(streams, inputs[e]);
      }
    }
    // Per branch, in the plan's order.
    std::vector<at::Tensor> branch_preds;
    for (size_t e = 0; e < evals.size(); ++e) {
      if (evals[e].branches.size() == 1) {
        branch_preds.push_back(preds[e]);
      } else {
        for (const at::Tensor& p : preds[e].split(batch, 0)) branch_preds.push_back(p);
      }
    }
    at::Tensor pos = branch_preds[0], neg;
    if (plan.parallel()) {
      // Exchange the branches once per step; both cfg ranks then combine and step identically.
      const at::Tensor both = mesh->cfg()->AllGatherSync(branch_preds[0]);
      pos = both.select(0, 0);
      neg = both.select(0, 1);
    } else if (plan.cfg()) {
      neg = branch_preds[1];
    }
    if (options.guidance.float32) {
      pos = pos.to(at::kFloat);
      if (neg.defined()) neg = neg.to(at::kFloat);
    }
    at::Tensor pred = pos;
    if (plan.cfg()) pred = neg + (pos - neg) * options.guidance.scale(i);
    latents = scheduler.Step(pred, i, options.guidance.float32 ? latents.to(at::kFloat) : latents).to(latent_dtype);
    if (options.record_steps) out.step_latents.push_back(latents.to(at::kCPU).to(at::kFloat));
    control.Progress(Stage::kDenoise, i + 1, n);
  }
  out.latents = latents;
  out.steps_skipped = cache.skipped();
  out.steps_computed = n - cache.skipped();
  out.cache_decisions = cache.decisions();
  return out;
}

}  // namespace ditserve::runtime
