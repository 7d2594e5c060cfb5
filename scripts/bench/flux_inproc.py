"""Shared set-up of the in-process FLUX measurements (graph_gain.py, fused_quality.py): ditserve's FLUX
transformer at the FLUX.1-dev config with random weights, built on the GPU in seconds (no checkpoint, no
export), run by TorchScript with the engine's settings and ops."""
import argparse
import contextlib
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def parse_args(doc: str, profile: bool = False, fp8: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine-lib", required=True, help="libditserve_runtime.so (the engine's ditserve ops)")
    p.add_argument("--res", type=int, default=1024)
    p.add_argument("--text-len", type=int, default=512)
    p.add_argument("--layers", default="19,38", help="double,single block counts")
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of the script (small --layers / --res)")
    if fp8:
        p.add_argument("--fp8", action="store_true", help="the model with FP8 block weights (export --fp8)")
    if profile:
        p.add_argument("--profile", type=int, default=0, metavar="N", help="profile one forward each: top N kernels")
    return p.parse_args()


# the engine's fused ops (ops.py has references; fp8_linear only appears in --fp8 exports)
FUSED_OPS = ("rms_rope", "layer_norm_modulate", "linear_gelu", "gated_residual", "fp8_linear")


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


@contextlib.contextmanager
def bf16_attention():
    """The engine's single-rank attention in bf16 inside the block, FP8 again after (the video benches' FP8 attention
    runs compare their step with the same step on bf16 attention)."""
    torch.ops.ditserve.set_fp8_attention(False)
    try:
        yield
    finally:
        torch.ops.ditserve.set_fp8_attention(True)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """||got - want|| / ||want|| in fp32."""
    got, want = got.float(), want.float()
    return float((got - want).norm() / want.norm())


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


def build_fp8(a: argparse.Namespace, bf16_state: dict) -> torch.nn.Module:
    """The same model with FP8 block weights (the export's --fp8), quantised from its bf16 weights."""
    from ditserve_export.flux_transformer import FluxTransformer, quantize_fp8_state_dict
    nd, ns = (int(x) for x in a.layers.split(","))
    with torch.device("meta"):
        model = FluxTransformer(num_layers=nd, num_single_layers=ns, guidance_embeds=True, fp8=True).eval()
    model.load_state_dict(quantize_fp8_state_dict(model, dict(bf16_state)), strict=True, assign=True)
    return model


def median_ms(fn, n: int = 10) -> float:
    """Median of n synchronised calls (the references' method)."""
    times = []
    for _ in range(n):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


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


def category(name: str) -> str:
    """A kernel's kind in the step's breakdown."""
    n = name.lower()
    if any(k in n for k in ("attention", "sdpa", "flash", "cudnn", "fmha")):
        return "attention"
    if any(k in n for k in ("mm", "gemm", "matmul", "linear", "addmm", "cutlass", "sm90_xmma", "nvjet")):
        return "gemm"
    return "other"


def profile_once(fn, cuda: bool) -> dict:
    """One call of fn under torch.profiler: device kernels (CPU ops without a GPU) by time, and by kind."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=acts) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    key = "device_time_total" if cuda else "self_cpu_time_total"
    rows = [(e.key, getattr(e, key) / 1000.0, e.count) for e in prof.key_averages()]
    if cuda:  # device kernels only (ATen ops also carry their kernels' time: keep the kernels)
        kernels = {e.key for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA}
        rows = [r for r in rows if r[0] in kernels]
    rows.sort(key=lambda r: -r[1])
    groups = {}
    for name, ms, _ in rows:
        groups[category(name)] = groups.get(category(name), 0.0) + ms
    return {"profiled_ms": sum(r[1] for r in rows) or 1.0, "by_kind_ms": groups,
            "top": [{"name": n, "ms": m, "count": c} for n, m, c in rows]}


def print_profile(prof: dict, top: int, file=None) -> None:
    total = prof["profiled_ms"]
    print("  by kind: " + ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f}%)" for k, v in sorted(prof["by_kind_ms"].items())),
          file=file)
    for r in prof["top"][:top]:
        print(f"  {r['ms']:9.2f} ms {100 * r['ms'] / total:5.1f}%  x{r['count']:<5} {r['name'][:100]}", file=file)
