#!/usr/bin/env python3
"""How much of a FLUX transformer forward is host time: the TorchScript module (ditserve's, random bf16
weights at the FLUX.1-dev config, built in-process) run eagerly with the engine's settings and ops, vs the
same forward replayed from a CUDA graph. Median of 10 synchronised forwards each (the references' method).

  graph_gain.py --engine-lib build-gpu/engine/libditserve_runtime.so [--res 1024] [--layers 19,38] [--fp8]
"""
import sys

import torch

import flux_inproc


def main() -> int:
    a = flux_inproc.parse_args(__doc__, fp8=True)
    flux_inproc.setup(a)
    model = flux_inproc.build(a).to(torch.bfloat16)
    if a.fp8:
        model = flux_inproc.build_fp8(a, model.state_dict())
    model = torch.jit.script(model)
    args = flux_inproc.inputs(a, torch.bfloat16)
    for _ in range(3):
        model(*args)
    eager = flux_inproc.median_ms(lambda: model(*args))
    side_stream = torch.cuda.Stream()  # warm-up and capture off the legacy default stream
    side_stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side_stream):
        for _ in range(3):
            model(*args)
    torch.cuda.current_stream().wait_stream(side_stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model(*args)
    replay = flux_inproc.median_ms(graph.replay)
    ref = model(*args)
    graph.replay()
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    print(f"FLUX transformer {a.layers} blocks{' (fp8 weights)' if a.fp8 else ''}, {a.res}x{a.res}: TorchScript eager {eager:.1f} ms, CUDA graph replay "
          f"{replay:.1f} ms (host share {100 * (eager - replay) / eager:.0f}%); replay vs eager normalised diff {err:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
