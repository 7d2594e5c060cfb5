#!/usr/bin/env python3
"""Quality of the bf16 fused path: ditserve's FLUX transformer (random weights at the FLUX.1-dev config,
built in-process) evaluated once in float32 (the reference), and in bf16 twice, with the engine's fused
kernels (rms_rope, layer_norm_modulate, linear_gelu) and with the unfused compositions they replace
(ops.py). Prints both bf16 paths' normalised error against float32: the fused path must not be worse.

  fused_quality.py --engine-lib build-gpu/engine/libditserve_engine.so [--res 1024] [--layers 19,38]
"""
import copy
import sys

import torch

import flux_inproc

def main() -> int:
    a = flux_inproc.parse_args(__doc__)
    ops = flux_inproc.setup(a)
    model = flux_inproc.build(a)
    low = torch.jit.script(copy.deepcopy(model).to(torch.bfloat16))
    fused = low(*flux_inproc.inputs(a, torch.bfloat16)).double()
    lib = torch.library.Library("ditserve", "IMPL")
    for name in flux_inproc.FUSED_OPS:  # from here on the compositions (ops.py) run on CUDA, for bf16 and the fp32 reference
        lib.impl(name, ops.OPS[name][1], "CUDA" if a.device.startswith("cuda") else "CPU")
    unfused = low(*flux_inproc.inputs(a, torch.bfloat16)).double()
    del low
    ref = torch.jit.script(model)(*flux_inproc.inputs(a, torch.float32)).double()

    def err(x):
        return ((x - ref).norm() / ref.norm()).item()

    print(f"FLUX transformer {a.layers} blocks, {a.res}x{a.res}, one forward, normalised error vs float32: "
          f"bf16 fused {err(fused):.2e}, bf16 unfused {err(unfused):.2e}; fused vs unfused "
          f"{((fused - unfused).norm() / unfused.norm()).item():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
