#!/usr/bin/env python3
"""diffusers' MochiTransformer3DModel step time (the reference for ditserve's Mochi step), eager and
torch.compile, in one process: the transformer call MochiPipeline makes per step (both CFG branches as one
batch of 2, a 256-token prompt padded and masked), timed with CUDA events after warm-up; plus the VAE decode.
With --export (ditserve's export of the same checkpoint) and --engine-lib, mode "ditserve" times the served
transformer.pt in process, its pieces called as the engine's Mochi denoiser calls them, with the same weights and
inputs (steady state: no per-request first-call costs); --fp8-attention runs it with FP8 attention (a group's
fp8_attention) and adds its error against the same step with bf16 attention; --profile adds one profiled step per
mode (top kernels).

  mochi_reference.py --src DIR --frames F --height H --width W [--modes "ditserve eager compile"] [--runs N]
                     [--export DIR --engine-lib LIB [--fp8-attention]] [--profile] [--real-tokens N] [--vae]
                     [--budget-s S]
                     [--device cuda|cpu]

Prints one JSON object per line: {"system", "metric", "value", "unit", "note"}. A mode whose warm-up would not
fit in --budget-s (measured from start) is skipped with a note, so a caller's wall-clock limit is never hit.
"""
import argparse
import json
import os
import sys
import time

import torch


def emit(system, metric, value, unit, note=""):
    print(json.dumps({"system": system, "metric": metric, "value": value, "unit": unit, "note": note}), flush=True)


def timed(fn, device, runs):
    out = []
    for _ in range(runs):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            out.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            out.append(1000 * (time.perf_counter() - t0))
    out.sort()
    return out[len(out) // 2]


def ditserve_step(a, x, txt, ts, mask):
    """The served transformer.pt's pieces as MochiDenoiser calls them on one rank: conditioning once (per request
    in the engine), then per step embed_video, blocks over all layers with [video, text] key mask, head."""
    import json as _json

    from ditserve_export import ops  # noqa: F401  (references for ops the engine lib did not register)

    torch._C._jit_set_profiling_mode(False)  # the engine's TorchScript settings (engine.cc: getProfilingMode)
    torch._C._jit_set_texpr_fuser_enabled(False)
    torch._C._jit_override_can_fuse_on_gpu(False)
    m = torch.jit.load(os.path.join(a.export, "transformer.pt"), map_location=x.device)
    with open(os.path.join(a.export, "model.json")) as f:
        layers = int(_json.load(f)["transformer"]["num_layers"])
    b, _, t, h, w = x.shape
    p = 2
    mod = m.conditioning(ts[:1], txt, mask)[0]
    cos, sin = m.rope(t, h // p, w // p)
    text = m.embed_text(txt)
    keys = torch.cat([torch.ones(b, t * (h // p) * (w // p), dtype=torch.bool, device=x.device), mask], dim=1)

    def step():
        v, tx = m.blocks(0, layers, m.embed_video(x), text, mod, cos, sin, keys)
        return m.head(v, mod)
    return step


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--modes", default="eager compile")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--real-tokens", type=int, default=24, help="real prompt tokens of the 256 (the rest masked)")
    p.add_argument("--vae", action="store_true", help="also time AutoencoderKLMochi.decode (eager)")
    p.add_argument("--budget-s", type=float, default=1e9)
    p.add_argument("--device", default="cuda")
    p.add_argument("--export", default="", help="ditserve's export of --src (mode ditserve)")
    p.add_argument("--engine-lib", default="", help="libditserve_runtime.so: the engine's ops (mode ditserve)")
    p.add_argument("--profile", action="store_true", help="one more step of each mode under torch.profiler")
    p.add_argument("--fp8-attention", action="store_true", help="mode ditserve with FP8 attention")
    a = p.parse_args()
    if a.engine_lib:
        torch.ops.load_library(a.engine_lib)
        torch.ops.ditserve.set_fp8_attention(a.fp8_attention)
    elif a.fp8_attention:
        raise SystemExit("--fp8-attention needs --engine-lib")
    start = time.time()
    import diffusers
    from diffusers import MochiTransformer3DModel

    dev = a.device
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    torch.set_grad_enabled(False)
    model = MochiTransformer3DModel.from_pretrained(f"{a.src}/transformer", torch_dtype=dtype).to(dev).eval()
    c = model.config
    t, h, w = (a.frames - 1) // 6 + 1, a.height // 8, a.width // 8
    g = torch.Generator(dev).manual_seed(0)
    x = torch.randn(2, c.in_channels, t, h, w, generator=g, device=dev, dtype=dtype)
    txt = torch.randn(2, 256, c.text_embed_dim, generator=g, device=dev, dtype=dtype)
    mask = torch.zeros(2, 256, dtype=torch.bool, device=dev)
    mask[:, :a.real_tokens] = True
    ts = torch.full((2,), 500.0, device=dev, dtype=dtype)
    tokens = t * (h // 2) * (w // 2)
    system = f"diffusers-{diffusers.__version__}"
    note = f"{a.frames}x{a.height}x{a.width}: {tokens} video tokens, batch 2 (CFG), {a.real_tokens}/256 prompt tokens"
    for mode in a.modes.split():
        name = f"{system}-{mode}"
        if mode == "ditserve":
            name = "ditserve-inprocess" + ("-fp8attn" if a.fp8_attention else "")
        fn = model
        if mode == "ditserve":
            if not a.export:
                continue
            step = ditserve_step(a, x, txt, ts, mask)
        elif mode == "compile":
            fn = torch.compile(model)
        elif mode != "eager":
            raise SystemExit(f"unknown mode {mode}")
        if mode != "ditserve":
            step = lambda: fn(x, txt, ts, mask, return_dict=False)  # noqa: E731
        w0 = time.time()
        step()  # warm-up (compiles)
        if dev == "cuda":
            torch.cuda.synchronize()
        warm = time.time() - w0
        left = a.budget_s - (time.time() - start)
        per = warm if mode == "eager" else warm / 10
        if left < per * a.runs * 1.2:
            emit(name, "step_ms", None, "ms", f"skipped: {left:.0f} s of budget left, warm-up {warm:.0f} s")
            continue
        emit(name, "warmup_s", round(warm, 2), "s", "first call (compilation for compile)")
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ms = timed(step, dev, a.runs)
        emit(name, "step_ms", round(ms, 1), "ms", note)
        if dev == "cuda":
            emit(name, "step_peak_gb", round(torch.cuda.max_memory_allocated() / 2**30, 2), "GB",
                 "peak allocated during the timed steps (weights included)")
        if mode == "ditserve" and a.fp8_attention:  # FP8 attention's cost in fidelity: the step with bf16 attention
            import flux_inproc  # noqa: E402  (scripts/bench)
            fp8_out = step()
            with flux_inproc.bf16_attention():
                err = flux_inproc.rel_err(fp8_out, step())
            emit(name, "fp8_attention_rel_err_vs_bf16", round(err, 5), "",
                 "step output, FP8 vs bf16 attention, same weights and inputs")
        if a.profile and a.budget_s - (time.time() - start) > 2 * ms / 1000 + 20:
            import flux_inproc  # noqa: E402  (scripts/bench: the torch.profiler helpers)
            prof = flux_inproc.profile_once(step, dev == "cuda")
            print(f"{system}-{mode}: one profiled step, {prof['profiled_ms']:.1f} ms", file=sys.stderr)
            flux_inproc.print_profile(prof, 25, sys.stderr)
            emit(name, "profile_ms", round(prof["profiled_ms"], 1), "ms",
                 "; ".join(f"{k} {v:.0f}" for k, v in sorted(prof["by_kind_ms"].items())))
    del model
    if a.vae and a.budget_s - (time.time() - start) > 60:
        from diffusers import AutoencoderKLMochi
        if dev == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        vae = AutoencoderKLMochi.from_pretrained(f"{a.src}/vae", torch_dtype=dtype).to(dev).eval()
        vae.enable_tiling()  # MochiPipeline's documented way to fit a full-size decode
        z = torch.randn(1, 12, t, h, w, generator=g, device=dev, dtype=dtype)
        ms = timed(lambda: vae.decode(z, return_dict=False), dev, 1)
        emit(f"{system}-eager", "vae_decode_s", round(ms / 1000, 2), "s", "AutoencoderKLMochi.decode with enable_tiling()")
        if dev == "cuda":
            emit(f"{system}-eager", "vae_decode_peak_gb", round(torch.cuda.max_memory_allocated() / 2**30, 2), "GB", "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
