#!/usr/bin/env python3
"""CogVideoX transformer step on one GPU, same run: ditserve (the exported TorchScript module, its pieces called as
the engine's Denoiser calls them, with the engine's ops) vs diffusers eager vs diffusers + torch.compile, with the
same weights: a checkpoint and ditserve's export of it (--checkpoint/--export: the served transformer.pt, as
bench_cogvideox.sh runs it), or random bf16 weights at the real configs with ditserve's module scripted here.

  cogvideox_bench.py --engine-lib build-gpu/engine/libditserve_runtime.so [--quick] [--budget-s 420]
                     [--configs 5b,1.5] [--checkpoint SRC --export MODEL] [--profile] [--out DIR]
                     [--device cuda|cpu] [--fp8-attention]

One "step" = one transformer call on both CFG branches (batch 2), as CogVideoXPipeline runs it:
  5b  at 480x720x49  (13 latent frames, 17,550 video tokens + 226 text)
  1.5 at 768x1360x81 (21 latent frames padded to 22, 44,880 video tokens + 226 text)
Prints a table and writes <out>/cogvideox_bench.json after every measurement (a run killed at its time limit
keeps what it measured). --budget-s: stop starting new measurements when they could not finish in time.
--device cpu --tiny: a dry run at the tiny 5b-style shape (ctest bench_cogvideox_dry_run). --fp8-attention: ditserve
with FP8 attention (a group's fp8_attention), plus its step output's error against bf16 attention.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

CONFIGS = {  # the released transformer configs (THUDM/CogVideoX-5b, CogVideoX1.5-5B) and the shapes
    "5b": dict(cfg=dict(num_attention_heads=48, attention_head_dim=64, in_channels=16, out_channels=16,
                        time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60,
                        sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                        use_rotary_positional_embeddings=True),
               shape=(13, 60, 90)),
    "1.5": dict(cfg=dict(num_attention_heads=48, attention_head_dim=64, in_channels=16, out_channels=16,
                         time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=300, sample_height=300,
                         sample_frames=81, patch_size=2, patch_size_t=2, patch_bias=False,
                         temporal_compression_ratio=4, max_text_seq_length=226,
                         use_rotary_positional_embeddings=True),
                shape=(22, 96, 170)),
}


class Bench:
    def __init__(self, a):
        self.a = a
        self.t0 = time.time()
        self.records = []
        self.failed = False  # ditserve's output is not diffusers' (a wrong export would time a wrong model)
        self.cuda = a.device.startswith("cuda")
        os.makedirs(a.out, exist_ok=True)

    def left(self) -> float:
        return self.a.budget_s - (time.time() - self.t0)

    def record(self, **kw):
        kw.setdefault("gpu", torch.cuda.get_device_name() if self.cuda else "cpu")
        self.records.append(kw)
        with open(os.path.join(self.a.out, "cogvideox_bench.json"), "w") as f:
            json.dump({"records": self.records, "diffusers": _diffusers_version(), "torch": torch.__version__}, f,
                      indent=1)
        print(f"bench: {json.dumps(kw)}", flush=True)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def timed(self, fn, n: int):
        """Median ms of n synchronised calls and the peak device memory of the calls."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(n):
            self.sync()
            t = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t) * 1000)
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else 0.0
        return statistics.median(times), peak


def _diffusers_version() -> str:
    try:
        import diffusers
        return diffusers.__version__
    except ImportError:
        return "absent"


def run_config(b: Bench, name: str, spec: dict) -> None:
    from diffusers import CogVideoXTransformer3DModel

    from ditserve_export.cogvideox_transformer import CogVideoXTransformer, from_diffusers_state_dict

    a = b.a
    dev = torch.device(a.device)
    dtype = torch.bfloat16 if b.cuda else torch.float32
    frames, h, w = spec["shape"]
    t_build = time.time()
    mine = None
    if a.checkpoint:  # the served artifacts: diffusers' transformer and ditserve's export of the same checkpoint
        with open(os.path.join(a.export, "model.json")) as f:
            dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
                json.load(f)["dtype"]]
        ref = CogVideoXTransformer3DModel.from_pretrained(os.path.join(a.checkpoint, "transformer"),
                                                          torch_dtype=dtype).to(dev).eval()
        scripted = torch.jit.load(os.path.join(a.export, "transformer.pt"), map_location=dev)
        spec = dict(spec, cfg=dict(ref.config))
    else:  # random weights at spec's config, ditserve's module scripted here
        torch.manual_seed(0)
        with torch.device(dev):
            ref = CogVideoXTransformer3DModel(**spec["cfg"]).to(dtype).eval()
        # ditserve's module built on the device in the bench dtype and given a copy of diffusers' weights (a
        # meta-device module handed diffusers' tensors with assign=True ran float32 into a bf16 Linear on CUDA).
        with torch.device(dev):
            mine = CogVideoXTransformer(spec["cfg"]).to(dtype).eval()
        mine.load_state_dict(from_diffusers_state_dict(dict(ref.state_dict())), strict=True)
        wrong = [f"{n}: {t.dtype} on {t.device}" for n, t in list(mine.named_parameters()) +
                 list(mine.named_buffers()) if t.dtype != dtype or t.device.type != dev.type]
        if wrong:
            raise SystemExit(f"bench: ditserve's transformer has tensors off {dtype} on {dev}: {wrong[:8]}")
        scripted = torch.jit.script(mine)
    tokens = (frames // (spec["cfg"].get("patch_size_t") or 1)) * (h // 2) * (w // 2)
    b.record(config=name, metric="build_s", value=round(time.time() - t_build, 1), video_tokens=tokens)

    g = torch.Generator(device=dev).manual_seed(1)
    latents = torch.randn(2, frames, spec["cfg"]["in_channels"], h, w, device=dev, generator=g).to(dtype)
    text = torch.randn(2, 226, spec["cfg"]["text_embed_dim"], device=dev, generator=g).to(dtype)
    t = torch.full((2,), 999, device=dev, dtype=torch.long)
    cos, sin = scripted.rotary(frames, h, w)
    cos, sin = cos.to(dev), sin.to(dev)
    n_layers = spec["cfg"]["num_layers"]

    def ditserve_step():  # CogVideoXDenoiser::Forward on one rank
        emb = scripted.time_embedding_of(t)
        video = scripted.embed_video(latents, None)
        txt = scripted.embed_text(text)
        video, txt = scripted.blocks(0, n_layers, video, txt, emb, cos, sin, None)
        return scripted.unpatchify(scripted.head(video, emb), frames, h, w)

    def diffusers_step(model):
        return model(hidden_states=latents, encoder_hidden_states=text, timestep=t, image_rotary_emb=(cos, sin),
                     return_dict=False)[0]

    runs = 2 if a.quick else 5
    results = {}
    # rough cost of one step from a first call, to keep inside the budget
    for system, fn in (("ditserve", ditserve_step), ("diffusers-eager", lambda: diffusers_step(ref))):
        if b.left() < 30:
            b.record(config=name, system=system, metric="skipped", value=0, note="budget")
            continue
        t_first = time.time()
        try:
            with torch.no_grad():
                out = fn()
        except RuntimeError as e:  # record why and go on with the references
            b.failed = True
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]  # TorchScript puts the cause last
            b.record(config=name, system=system, metric="error", value=0,
                     note=" | ".join(lines[:1] + lines[-3:])[:600])
            continue
        first = time.time() - t_first
        if b.left() < first * (runs + 1) + 10:
            runs_here = 1
        else:
            runs_here = runs
        with torch.no_grad():
            ms, peak = b.timed(fn, runs_here)
        results[system] = (ms, out)
        b.record(config=name, system=system, metric="step_ms", value=round(ms, 1), peak_gib=round(peak, 2),
                 runs=runs_here, first_call_s=round(first, 1))
        if a.profile and b.left() > first + 20:  # where the step's time goes, by kernel
            import flux_inproc  # noqa: E402  (scripts/bench: torch.profiler helpers shared with profile_step.py)
            with torch.no_grad():
                prof = flux_inproc.profile_once(fn, b.cuda)
            print(f"{name} {system}: one profiled step, {prof['profiled_ms']:.1f} ms of "
                  f"{'device' if b.cuda else 'cpu'} time")
            flux_inproc.print_profile(prof, 25)
            b.record(config=name, system=system, metric="profile_ms", value=round(prof["profiled_ms"], 1),
                     by_kind_ms={k: round(v, 1) for k, v in prof["by_kind_ms"].items()},
                     top=[dict(r, ms=round(r["ms"], 2)) for r in prof["top"][:25]])
    if "ditserve" in results and "diffusers-eager" in results:
        got, want = results["ditserve"][1].float(), results["diffusers-eager"][1].float()
        rel = ((got - want).norm() / want.norm()).item()
        b.record(config=name, metric="ditserve_vs_eager_rel_err", value=rel)
        if not rel <= (1e-4 if dtype == torch.float32 else 5e-2) and not a.fp8_attention:
            b.failed = True
    if "ditserve" in results and a.fp8_attention:  # FP8 attention's cost in fidelity: the step with bf16 attention
        import flux_inproc  # noqa: E402  (scripts/bench)
        with torch.no_grad(), flux_inproc.bf16_attention():
            err = flux_inproc.rel_err(results["ditserve"][1], ditserve_step())
        b.record(config=name, system="ditserve", metric="fp8_attention_rel_err_vs_bf16", value=err)
    if not b.cuda:
        b.record(config=name, system="diffusers-compile", metric="skipped", value=0, note="cpu dry run")
    elif b.left() < 200:
        b.record(config=name, system="diffusers-compile", metric="skipped", value=0, note="budget")
    else:
        compiled = torch.compile(ref)
        t_c = time.time()
        with torch.no_grad():
            diffusers_step(compiled)
            diffusers_step(compiled)
        compile_s = time.time() - t_c
        with torch.no_grad():
            ms, peak = b.timed(lambda: diffusers_step(compiled), 1 if b.left() < 60 else runs)
        results["diffusers-compile"] = (ms, None)
        b.record(config=name, system="diffusers-compile", metric="step_ms", value=round(ms, 1),
                 peak_gib=round(peak, 2), compile_s=round(compile_s, 1))
    if "ditserve" in results:
        for ref_name in ("diffusers-eager", "diffusers-compile"):
            if ref_name in results:
                b.record(config=name, metric=f"ditserve_over_{ref_name}", value=round(results["ditserve"][0] /
                                                                                      results[ref_name][0], 3))
    del ref, mine, scripted, results
    if b.cuda:
        torch.cuda.empty_cache()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine-lib", default="", help="libditserve_runtime.so: the engine's ditserve ops")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="2 timed runs per system instead of 5")
    p.add_argument("--budget-s", type=float, default=480, help="start nothing that cannot end before this")
    p.add_argument("--configs", default="5b,1.5")
    p.add_argument("--tiny", action="store_true", help="the tiny 5b-style config (dry run)")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/cogvideox-bench"))
    p.add_argument("--profile", action="store_true", help="one more step of each system under torch.profiler")
    p.add_argument("--checkpoint", default="", help="a diffusers CogVideoX pipeline dir: time its transformer and ...")
    p.add_argument("--export", default="", help="... ditserve's export of it (the served transformer.pt), one config")
    p.add_argument("--fp8-attention", action="store_true", help="ditserve with FP8 attention (needs --engine-lib)")
    a = p.parse_args()
    if a.fp8_attention and not a.engine_lib:
        p.error("--fp8-attention needs --engine-lib")
    if bool(a.checkpoint) != bool(a.export):
        p.error("--checkpoint and --export go together")
    if a.engine_lib:
        torch.ops.load_library(a.engine_lib)
        torch.ops.ditserve.set_fp8_attention(a.fp8_attention)
    from ditserve_export import ops  # noqa: F401  (Python references for ops the engine lib did not register)
    torch._C._jit_set_profiling_mode(False)  # the engine's TorchScript settings (engine.cc: getProfilingMode)
    torch._C._jit_set_texpr_fuser_enabled(False)
    torch._C._jit_override_can_fuse_on_gpu(False)
    torch._C._jit_override_can_fuse_on_cpu(False)
    torch.set_grad_enabled(False)
    b = Bench(a)
    configs = dict(CONFIGS)
    if a.tiny:
        from ditserve_export.cogvideox_tiny import TINY_TRANSFORMER, VARIANTS
        configs = {"tiny-5b": dict(cfg=dict(TINY_TRANSFORMER, **VARIANTS["5b"]["transformer"]), shape=(3, 4, 6))}
        a.configs = "tiny-5b"
    for name in a.configs.split(","):
        if b.left() < 60:
            b.record(config=name, metric="skipped", value=0, note="budget")
            continue
        run_config(b, name, configs[name])
    print("\nconfig  system             step ms   peak GiB")
    for r in b.records:
        if r.get("metric") == "step_ms":
            print(f"{r['config']:<7} {r['system']:<18} {r['value']:>8}   {r.get('peak_gib', 0):>6}")
        elif r.get("metric", "").startswith("ditserve_over") or r.get("metric") == "ditserve_vs_eager_rel_err":
            print(f"{r['config']:<7} {r['metric']}: {r['value']}")
    if b.failed:
        print("bench: ditserve's transformer output differs from diffusers' (see rel_err)", file=sys.stderr)
    return 1 if b.failed else 0


if __name__ == "__main__":
    sys.exit(main())
