#!/usr/bin/env python3
"""Profile one transformer evaluation of an exported ditserve FLUX model: where a step's time goes.

  profile_step.py MODEL_DIR [--engine-lib libditserve_runtime.so] [--res 1024] [--text-len 512]
                  [--device cuda] [--top 25] [--json OUT]

Loads MODEL_DIR/transformer.pt (the TorchScript module the C++ engine runs). With --engine-lib the
torch.ops.ditserve.* ops are the engine's own (its attention backend and fused CUDA kernels: the same
kernels as a served single-rank step); without it, ops.py's Python references (unfused). Then it runs 3
warm-up evaluations on random inputs at the request shape and times two things (median of 10 synchronised calls):
the whole transformer call `forward` (the references' method: one step's conditioning included), and the step as
the pipeline serves it (`step`, with the request's conditioning computed once for --steps steps, its time spread
over them). One served step under torch.profiler gives the top ops by device time with their share, grouped into
GEMM / attention / other. Used by scripts/bench_gpu.sh profile.
"""
import argparse
import json
import os
import sys
import time

import torch

import flux_inproc  # noqa: E402  (puts scripts/ on the path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--engine-lib", default="", help="libditserve_runtime.so: profile the engine's op kernels")
    p.add_argument("--res", type=int, default=1024)
    p.add_argument("--text-len", type=int, default=512)
    p.add_argument("--device", default="cuda")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--steps", type=int, default=28, help="schedule length for the served step's conditioning")
    p.add_argument("--json")
    p.add_argument("--compare-unfused", action="store_true",
                   help="also run the step with ops.py's unfused references in place of the engine's kernels "
                        "and print the normalised difference of the outputs (needs --engine-lib)")
    a = p.parse_args()
    ops, engine_fused_ops = flux_inproc.load_engine_ops(a.engine_lib)
    from ditserve_export.flux_transformer import flux_rope
    meta = json.load(open(os.path.join(a.model_dir, "model.json")))
    t = meta["transformer"]
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[meta.get("dtype", "float32")]
    dev = torch.device(a.device)
    torch.set_grad_enabled(False)
    flux_inproc.use_engine_torchscript_settings()
    model = torch.jit.load(os.path.join(a.model_dir, t.get("file", "transformer.pt")), map_location=dev).eval()

    vae_scale = meta["vae"]["scale_factor"]
    side = 2 * (a.res // (vae_scale * 2)) // 2  # packed latent grid side
    n_img = side * side
    ids = torch.cat([torch.zeros(a.text_len, 3),
                     torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(side).float(), torch.arange(side).float(),
                                                indexing="ij"), -1).reshape(-1, 3)])
    cos, sin = flux_rope(ids, t["axes_dims_rope"], float(t.get("rope_theta", 10000)))
    args = (torch.randn(1, n_img, t["in_channels"], dtype=dtype, device=dev),
            torch.randn(1, a.text_len, t["joint_attention_dim"], dtype=dtype, device=dev),
            torch.randn(1, t["pooled_projection_dim"], dtype=dtype, device=dev),
            torch.full((1,), 0.5, dtype=dtype, device=dev), torch.full((1,), 3.5, dtype=torch.float32, device=dev),
            cos.to(dev), sin.to(dev))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    latents, text, pooled, _, guidance = args[:5]
    schedule = torch.linspace(1.0, 1.0 / a.steps, a.steps, device=dev).to(dtype).unsqueeze(1)
    schedule[a.steps // 2] = args[3]  # the forward's timestep: the served step at that row computes the same function
    for _ in range(3):
        model(*args)
        cond = model.conditioning(pooled, schedule, guidance)
    sync()
    wall_ms = flux_inproc.median_ms(lambda: model(*args))  # the references' method (flux_reference.py)
    cond_ms = flux_inproc.median_ms(lambda: model.conditioning(pooled, schedule, guidance))
    txt = model.embed_text(text)
    mod = cond[a.steps // 2]

    def served_step():
        return model.step(latents, txt, mod, args[5], args[6])
    step_ms = flux_inproc.median_ms(served_step) + cond_ms / a.steps
    ref = model(*args).float()
    served_err = ((served_step().float() - ref).norm() / ref.norm()).item()  # batched vs one-row adaLN GEMMs
    prof = flux_inproc.profile_once(served_step, dev.type == "cuda")
    total = prof["profiled_ms"]
    print(f"one transformer evaluation at {a.res}x{a.res} ({n_img} image + {a.text_len} text tokens), {dtype}, "
          f"{dev}: forward {wall_ms:.1f} ms; served step {step_ms:.1f} ms (incl. 1/{a.steps} of the request's "
          f"conditioning, {cond_ms:.1f} ms) (medians of 10); profiled served step: "
          f"{'device' if dev.type == 'cuda' else 'cpu'} time {total:.1f} ms")
    print(f"  served step vs forward at the same timestep: normalised difference {served_err:.2e}")
    flux_inproc.print_profile(prof, a.top)
    summary = {"wall_ms": wall_ms, "step_ms": step_ms, "conditioning_ms": cond_ms, "steps": a.steps,
               "served_vs_forward_norm_err": served_err,
               "profiled_ms": total, "by_kind_ms": prof["by_kind_ms"], "top": prof["top"][:a.top]}
    if a.compare_unfused and a.engine_lib:
        fused = model(*args).float()
        # Replace the engine's fused kernels by the unfused compositions for this device (attention stays).
        lib = torch.library.Library("ditserve", "IMPL")
        key = "CUDA" if dev.type == "cuda" else "CPU"
        for name in engine_fused_ops:
            lib.impl(name, ops.OPS[name][1], key)
        unfused = model(*args).float()
        sync()
        t0 = time.perf_counter()
        model(*args)
        sync()
        err = ((fused - unfused).norm() / unfused.norm()).item()
        summary["unfused_wall_ms"] = (time.perf_counter() - t0) * 1000
        summary["fused_vs_unfused_norm_err"] = err
        print(f"  fused vs unfused ops: transformer output normalised difference {err:.2e}; "
              f"unfused step wall {summary['unfused_wall_ms']:.1f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
