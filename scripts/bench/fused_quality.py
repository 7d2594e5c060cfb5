#!/usr/bin/env python3
"""Quality (and speed) of the optimised paths: ditserve's FLUX transformer (random weights at the FLUX.1-dev
config, built in-process) evaluated once in float32 (the reference); in bf16 with the engine's fused kernels
(rms_rope, layer_norm_modulate, linear_gelu, gated_residual) and with the unfused compositions they replace (ops.py); and
with the opt-in FP8 block weights (the export's --fp8: fp8_linear). Prints each path's normalised error
against float32 (the fused bf16 path must not be worse than the unfused one; FP8 is reported against both)
and the bf16 / FP8 forwards' times (median of 10, the references' method).

  fused_quality.py --engine-lib build-gpu/engine/libditserve_runtime.so [--res 1024] [--layers 19,38]
                   [--profile N]   (also one profiled forward of each, its top N kernels)
"""
import copy
import json
import sys

import torch

import flux_inproc


def main() -> int:
    a = flux_inproc.parse_args(__doc__, profile=True)
    ops = flux_inproc.setup(a)
    model = flux_inproc.build(a)
    x16 = flux_inproc.inputs(a, torch.bfloat16)
    low = torch.jit.script(copy.deepcopy(model).to(torch.bfloat16))
    fused = low(*x16).double()
    ms_bf16 = flux_inproc.median_ms(lambda: low(*x16))
    profiles = {}
    if a.profile:
        profiles["bf16"] = flux_inproc.profile_once(lambda: low(*x16), a.device.startswith("cuda"))
    fp8m = torch.jit.script(flux_inproc.build_fp8(a, low.state_dict()))
    fp8 = fp8m(*x16).double()
    ms_fp8 = flux_inproc.median_ms(lambda: fp8m(*x16))
    if a.profile:
        profiles["fp8"] = flux_inproc.profile_once(lambda: fp8m(*x16), a.device.startswith("cuda"))
    del fp8m
    lib = torch.library.Library("ditserve", "IMPL")
    for name in flux_inproc.FUSED_OPS:  # from here on the compositions (ops.py) run on CUDA, for bf16 and the fp32 reference
        lib.impl(name, ops.OPS[name][1], "CUDA" if a.device.startswith("cuda") else "CPU")
    unfused = low(*x16).double()
    del low
    ref = torch.jit.script(model)(*flux_inproc.inputs(a, torch.float32)).double()

    def err(x, want=ref):
        return ((x - want).norm() / want.norm()).item()

    r = {"bf16_fused": err(fused), "bf16_unfused": err(unfused), "fp8": err(fp8), "fused_vs_unfused": err(fused, unfused),
         "fp8_vs_bf16_fused": err(fp8, fused), "bf16_ms": ms_bf16, "fp8_ms": ms_fp8}
    print(f"FLUX transformer {a.layers} blocks, {a.res}x{a.res}, one forward, normalised error vs float32: "
          f"bf16 fused {r['bf16_fused']:.2e}, bf16 unfused {r['bf16_unfused']:.2e}, fp8 {r['fp8']:.2e}; fused vs "
          f"unfused {r['fused_vs_unfused']:.2e}, fp8 vs bf16 fused {r['fp8_vs_bf16_fused']:.2e}. Forward (median of "
          f"10): bf16 {ms_bf16:.1f} ms, fp8 {ms_fp8:.1f} ms")
    for name, prof in profiles.items():
        print(f"{name} forward, one profiled evaluation: device time {prof['profiled_ms']:.1f} ms")
        flux_inproc.print_profile(prof, a.profile)
    print(json.dumps({k: round(v, 6) for k, v in r.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
