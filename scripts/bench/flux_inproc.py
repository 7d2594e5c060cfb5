"""Shared set-up of the in-process FLUX measurements (graph_gain.py, fused_quality.py): ditserve's FLUX
transformer at the FLUX.1-dev config with random weights, built on the GPU in seconds (no checkpoint, no
export), run by TorchScript with the engine's settings and ops."""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def parse_args(doc: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine-lib", required=True, help="libditserve_engine.so (the engine's ditserve ops)")
    p.add_argument("--res", type=int, default=1024)
    p.add_argument("--text-len", type=int, default=512)
    p.add_argument("--layers", default="19,38", help="double,single block counts")
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of the script (small --layers / --res)")
    return p.parse_args()


FUSED_OPS = ("rms_rope", "layer_norm_modulate", "linear_gelu")  # the engine's fused ops (ops.py has references)


def load_engine_ops(engine_lib: str):
    """Registers the engine's ditserve ops from engine_lib (if given) before ops.py defines Python references
    for the rest; returns (the ops module, the fused ops the engine provides: an older build may lack some)."""
    provided = []
    if engine_lib:
        torch.ops.load_library(engine_lib)
        provided = [n for n in FUSED_OPS if hasattr(torch.ops.ditserve, n)]
    from ditserve_export import ops
    return ops, provided


def use_engine_torchscript_settings() -> None:
    """engine.cc UseAsExportedTorchScript: graphs run as exported (no profiling executor, no JIT fusers)."""
    torch._C._jit_set_profiling_executor(False)
    torch._C._jit_set_texpr_fuser_enabled(False)
    torch._C._jit_override_can_fuse_on_gpu(False)
    torch._C._jit_override_can_fuse_on_cpu(False)


def setup(a: argparse.Namespace):
    """The engine's ops and TorchScript settings, no autograd; returns the ops module."""
    ops, _ = load_engine_ops(a.engine_lib)
    use_engine_torchscript_settings()
    torch.set_grad_enabled(False)
    return ops


def build(a: argparse.Namespace) -> torch.nn.Module:
    """float32 module on a.device whose weights are exactly representable in bf16 (seed 0)."""
    from ditserve_export.flux_transformer import FluxTransformer
    nd, ns = (int(x) for x in a.layers.split(","))
    torch.manual_seed(0)
    with torch.device(a.device):
        model = FluxTransformer(num_layers=nd, num_single_layers=ns, guidance_embeds=True).eval()
        for prm in model.parameters():
            prm.copy_(prm.to(torch.bfloat16).float())
    return model


def inputs(a: argparse.Namespace, dtype: torch.dtype) -> tuple:
    """forward()'s arguments at a.res x a.res: latents, text, pooled, timestep in dtype (values drawn in
    bf16, so every dtype sees the same numbers); guidance, cos, sin in float32."""
    from ditserve_export.flux_transformer import flux_rope
    side = a.res // 16
    ids = torch.cat([torch.zeros(a.text_len, 3),
                     torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(side).float(), torch.arange(side).float(),
                                                indexing="ij"), -1).reshape(-1, 3)])
    cos, sin = flux_rope(ids, (16, 56, 56))
    dev = torch.device(a.device)
    g = torch.Generator(device=dev).manual_seed(1)
    drawn = [torch.randn(1, side * side, 64, device=dev, generator=g), torch.randn(1, a.text_len, 4096, device=dev, generator=g),
             torch.randn(1, 768, device=dev, generator=g), torch.full((1,), 0.5, device=dev)]
    return tuple(x.to(torch.bfloat16).to(dtype) for x in drawn) + (torch.full((1,), 3.5, device=dev), cos.to(dev),
                                                                   sin.to(dev))
