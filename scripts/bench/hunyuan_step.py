#!/usr/bin/env python3
"""HunyuanVideo transformer step and VAE decode, side by side on one GPU, same run, same random weights:

  ditserve          the exported TorchScript transformer (scripts/ditserve_export/hunyuan_video_transformer.py) run
                    with the engine's ops and TorchScript settings, as the engine's denoise step runs it (text key
                    mask, every block), built on the GPU from the diffusers model's weights (no checkpoint on disk)
  diffusers-eager   diffusers' HunyuanVideoTransformer3DModel (the python's diffusers: the newest release on the
                    GPU host), eager
  diffusers-compile the same under torch.compile (compile time reported separately)

  hunyuan_step.py --random --engine-lib build/engine/libditserve_runtime.so --width 960 --height 544 --frames 61
                  [--systems ditserve,eager,compile] [--runs 2] [--budget-s 420] [--json OUT]
  hunyuan_step.py --random --decode --width 1280 --height 720 --frames 129 ...   (VAE decode instead)

--random: full-size HunyuanVideo configs with random bf16 weights initialised on the device (seconds, nothing
downloaded). --budget-s: stops before starting anything whose expected time would overrun the budget (each
skipped measurement is reported as such), so a device call with a hard limit always gets its table. --tiny: the
tiny test config (CPU dry runs).
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

T0 = time.time()


def log(msg: str) -> None:
    print(f"[hunyuan_step {time.time() - T0:6.1f}s] {msg}", flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0


class Budget:
    def __init__(self, seconds: float):
        self.end = T0 + seconds

    def left(self) -> float:
        return self.end - time.time()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds


def timed(fn, runs: int, device: str, budget: Budget, expect_s: float):
    """Warm-up + up to `runs` timed calls while the budget allows; returns (per-call seconds, peak GiB)."""
    peak_reset(device)
    t = time.time()
    fn()
    sync(device)
    first = time.time() - t
    times = []
    for _ in range(runs):
        if not budget.allows(max(first, expect_s) * 1.2 + 5):
            break
        t = time.time()
        fn()
        sync(device)
        times.append(time.time() - t)
    return (min(times) if times else first), first, len(times), peak_gib(device)


def transformer_step(a, device, dtype, budget, results):
    from diffusers import HunyuanVideoTransformer3DModel
    from ditserve_export.tiny import TINY_HUNYUAN_TRANSFORMER

    cfg = dict(TINY_HUNYUAN_TRANSFORMER) if a.tiny else {}
    t = time.time()
    torch.manual_seed(0)
    with torch.device(device):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # random init directly in bf16: no fp32 copy of 13B weights
        ref = HunyuanVideoTransformer3DModel(**cfg).eval().requires_grad_(False)
        torch.set_default_dtype(prev)
    c = ref.config
    n_params = sum(p.numel() for p in ref.parameters())
    log(f"diffusers transformer built: {n_params / 1e9:.2f}B params in {time.time() - t:.1f}s")
    results["params"] = n_params
    results["build_s"] = time.time() - t

    f = (a.frames - 1) // 4 + 1
    h, w = a.height // 8 // c.patch_size, a.width // 8 // c.patch_size
    if a.tiny:
        h, w = a.height // 4 // c.patch_size, a.width // 4 // c.patch_size
    tokens = f * h * w
    results["video_tokens"] = tokens
    g = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(1, c.in_channels, f, h * c.patch_size, w * c.patch_size, generator=g).to(device, dtype)
    txt = torch.randn(1, a.text_len, c.text_embed_dim, generator=g).to(device, dtype)
    mask = torch.zeros(1, a.text_len, dtype=torch.long, device=device)
    mask[:, :a.valid_text] = 1  # a typical prompt: the rest is padding (masked keys)
    pooled = torch.randn(1, c.pooled_projection_dim, generator=g).to(device, dtype)
    timestep = torch.tensor([900.0], device=device)
    guidance = torch.tensor([6.0], device=device, dtype=dtype) * 1000

    systems = a.systems.split(",")
    if "ditserve" in systems:
        try:
            ditserve_step(a, device, ref, c, x, txt, mask, pooled, timestep, guidance, (f, h, w, tokens), budget,
                          results)
        except Exception as e:  # noqa: BLE001  (the references still run and the table says what failed)
            results["ditserve"] = {"skipped": f"error: {type(e).__name__}: {str(e)[:300]}"}
            log(f"ditserve failed: {e}")
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    run_references(a, device, ref, x, txt, mask, pooled, timestep, guidance, budget, results)


def ditserve_step(a, device, ref, c, x, txt, mask, pooled, timestep, guidance, grid, budget, results):
    from ditserve_export.flux_transformer import fuse_diffusers_state_dict, quantize_fp8_state_dict
    from ditserve_export.hunyuan_video import hunyuan_rope
    from ditserve_export.hunyuan_video_transformer import HunyuanVideoTransformer

    f, h, w, tokens = grid
    t = time.time()
    with torch.device("meta"):
        mine = HunyuanVideoTransformer.from_diffusers_config(dict(c), fp8=a.fp8)
    sd = fuse_diffusers_state_dict(dict(ref.state_dict()))
    if a.fp8:  # the opt-in export's weights: e4m3 block GEMMs (export_model.py --fp8)
        sd = quantize_fp8_state_dict(mine, sd)
    mine.load_state_dict(sd, strict=True, assign=True)
    del sd
    scripted = torch.jit.script(mine.eval())
    del mine
    results["ditserve_script_s"] = time.time() - t
    log(f"ditserve transformer scripted in {time.time() - t:.1f}s")
    cos, sin = hunyuan_rope(f, h, w, list(c.rope_axes_dim), float(c.rope_theta))
    cos = torch.cat([torch.ones(a.text_len, cos.shape[1]), cos]).to(device)
    sin = torch.cat([torch.zeros(a.text_len, sin.shape[1]), sin]).to(device)
    mod = scripted.conditioning(pooled, timestep[None], guidance)[0]
    emb = scripted.embed_text(txt, mask, timestep[None])[0]
    key_mask = torch.cat([mask.bool(), torch.ones(1, tokens, dtype=torch.bool, device=device)], dim=1)

    def run_ditserve():
        img = scripted.embed_image(x)
        img, tx = scripted.double_blocks(0, c.num_layers, img, emb, mod, cos, sin, key_mask)
        img, tx = scripted.single_blocks(0, c.num_single_layers, img, tx, mod, cos, sin, key_mask)
        return scripted.head(img, mod)

    best, first, n, peak = timed(run_ditserve, a.runs, device, budget, 0)
    results["ditserve"] = {"step_s": best, "first_s": first, "runs": n, "peak_gib": peak,
                           "weights": "fp8_e4m3" if a.fp8 else str(x.dtype).split(".")[-1],
                           "attention": "fp8_e4m3" if a.fp8_attention else str(x.dtype).split(".")[-1]}
    log(f"ditserve ({results['ditserve']['weights']}): {best:.3f} s/step (first {first:.2f}s, {n} runs), "
        f"peak {peak:.1f} GiB")
    if a.fp8_attention:  # what FP8 attention gains and costs in fidelity: the same step with bf16 attention
        from bench.flux_inproc import bf16_attention, rel_err
        fp8_out = run_ditserve()
        with bf16_attention():
            err = rel_err(fp8_out, run_ditserve())
            best, first, n, peak = timed(run_ditserve, a.runs, device, budget, 0)
        results["ditserve-bf16-attention"] = {"step_s": best, "runs": n, "peak_gib": peak}
        log(f"ditserve with bf16 attention: {best:.3f} s/step")
        results["ditserve"]["fp8_attention_rel_err_vs_bf16"] = err
        log(f"ditserve step output, FP8 vs bf16 attention: relative error {err:.2e}")
    del scripted


def run_references(a, device, ref, x, txt, mask, pooled, timestep, guidance, budget, results):
    systems = a.systems.split(",")

    def run_ref(model):
        return model(x, timestep, txt, mask, pooled, guidance, return_dict=False)[0]

    if "eager" in systems:
        if budget.allows(30):
            best, first, n, peak = timed(lambda: run_ref(ref), a.runs, device, budget, 0)
            results["diffusers-eager"] = {"step_s": best, "first_s": first, "runs": n, "peak_gib": peak}
            log(f"diffusers eager: {best:.3f} s/step (first {first:.2f}s, {n} runs), peak {peak:.1f} GiB")
        else:
            results["diffusers-eager"] = {"skipped": f"budget ({budget.left():.0f}s left)"}
    if "compile" in systems:
        eager = results.get("diffusers-eager", {}).get("step_s", 3.0)
        # compiling 60 blocks takes minutes: start only when a compile, a warm-up and a run fit
        if budget.allows(a.compile_estimate_s + 3 * eager):
            compiled = torch.compile(ref)
            t = time.time()
            run_ref(compiled)
            sync(device)
            compile_s = time.time() - t
            log(f"torch.compile + first call: {compile_s:.1f}s")
            best, first, n, peak = timed(lambda: run_ref(compiled), a.runs, device, budget, eager)
            results["diffusers-compile"] = {"step_s": best, "first_s": first, "runs": n, "peak_gib": peak,
                                            "compile_s": compile_s}
            log(f"diffusers compile: {best:.3f} s/step ({n} runs), peak {peak:.1f} GiB")
        else:
            results["diffusers-compile"] = {"skipped": f"budget ({budget.left():.0f}s left, compile estimate "
                                                      f"{a.compile_estimate_s:.0f}s)"}
            log(f"diffusers compile skipped: {results['diffusers-compile']['skipped']}")


def vae_decode(a, device, dtype, budget, results):
    """diffusers' AutoencoderKLHunyuanVideo.decode with enable_tiling() (the newest diffusers on the host) against
    the same tiling driving ditserve's scripted decoder (hunyuan_video_vae.py): diffusers' _decode calls
    self.post_quant_conv / self.decoder per tile, so swapping those modules runs the engine's tile decoder under
    the exact tile schedule the engine's C++ driver (models/hunyuan_video/hunyuan_video_decode.cc) uses."""
    from diffusers import AutoencoderKLHunyuanVideo
    from ditserve_export.hunyuan_video_vae import HunyuanVideoVaeDecode
    from ditserve_export.tiny import TINY_HUNYUAN_VAE

    cfg = dict(TINY_HUNYUAN_VAE) if a.tiny else {}
    torch.manual_seed(0)
    with torch.device(device):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        vae = AutoencoderKLHunyuanVideo(**cfg).eval().requires_grad_(False)
        torch.set_default_dtype(prev)
    vae.enable_tiling()
    s, tr = vae.spatial_compression_ratio, vae.temporal_compression_ratio
    z = torch.randn(1, vae.config.latent_channels, (a.frames - 1) // tr + 1, a.height // s, a.width // s,
                    generator=torch.Generator().manual_seed(0)).to(device, dtype)
    systems = a.systems.split(",")
    frames = {}  # each system's last decode, to compare the two decoders under the same tiles

    def decode(name):
        def run():
            frames[name] = vae.decode(z, return_dict=False)[0]
        return run

    if "eager" in systems and budget.allows(60):
        best, first, n, peak = timed(decode("eager"), max(1, a.runs - 1), device, budget, 0)
        results["vae-diffusers-eager"] = {"decode_s": best, "runs": n, "peak_gib": peak}
        log(f"diffusers VAE decode (tiled): {best:.2f}s, peak {peak:.1f} GiB")
    if "ditserve" in systems and budget.allows(60):
        mine = torch.jit.script(HunyuanVideoVaeDecode.load_diffusers(vae))

        class Decoder(torch.nn.Module):
            def forward(self, x):
                return mine(x)

        vae.post_quant_conv, vae.decoder = torch.nn.Identity(), Decoder()
        best, first, n, peak = timed(decode("ditserve"), max(1, a.runs - 1), device, budget, 0)
        results["vae-ditserve"] = {"decode_s": best, "runs": n, "peak_gib": peak}
        log(f"ditserve VAE decode (same tiles): {best:.2f}s, peak {peak:.1f} GiB")
    if len(frames) == 2:  # in [-1, 1]; one 8-bit level is 2/255
        diff = (frames["ditserve"].float() - frames["eager"].float()).abs()
        results["vae-ditserve"]["max_abs_diff_vs_diffusers"] = float(diff.max())
        results["vae-ditserve"]["mean_abs_diff_vs_diffusers"] = float(diff.mean())
        log(f"ditserve vs diffusers frames: max |diff| {float(diff.max()):.4f}, mean {float(diff.mean()):.2e}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random", action="store_true", required=True, help="random full-size weights (the only mode)")
    p.add_argument("--engine-lib", default="", help="libditserve_runtime.so: the engine's ditserve ops")
    p.add_argument("--device", default="cuda")
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=544)
    p.add_argument("--frames", type=int, default=61)
    p.add_argument("--text-len", type=int, default=256)
    p.add_argument("--valid-text", type=int, default=40, help="prompt tokens that are not padding")
    p.add_argument("--systems", default="ditserve,eager,compile")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--budget-s", type=float, default=1e9)
    p.add_argument("--compile-estimate-s", type=float, default=150.0)
    p.add_argument("--decode", action="store_true", help="time the VAE decode instead of the transformer")
    p.add_argument("--tiny", action="store_true", help="the tiny test config (CPU dry runs)")
    p.add_argument("--fp8", action="store_true", help="ditserve with the opt-in FP8 export's block GEMMs (e4m3)")
    p.add_argument("--fp8-attention", action="store_true",
                   help="ditserve with FP8 attention (a group's fp8_attention; needs --engine-lib)")
    p.add_argument("--json", default="", help="write the results here")
    a = p.parse_args()

    if a.engine_lib:
        torch.ops.load_library(a.engine_lib)
        torch.ops.ditserve.set_fp8_attention(a.fp8_attention)
    elif a.fp8_attention:
        raise SystemExit("--fp8-attention needs --engine-lib")
    from ditserve_export import ops  # noqa: F401  (references for the ops the engine library lacks)
    from bench.flux_inproc import use_engine_torchscript_settings
    use_engine_torchscript_settings()
    torch.set_grad_enabled(False)
    import diffusers
    dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
    results = {"diffusers": diffusers.__version__, "torch": torch.__version__, "device": a.device,
               "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
               "width": a.width, "height": a.height, "frames": a.frames, "dtype": str(dtype).split(".")[-1]}
    budget = Budget(a.budget_s)
    (vae_decode if a.decode else transformer_step)(a, a.device, dtype, budget, results)
    results["wall_s"] = time.time() - T0
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
