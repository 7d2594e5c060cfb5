#!/usr/bin/env python3
"""The opt-in FP8 export (scripts/export_model.py --fp8) on the tiny FLUX models, CPU (ops.py's references).

Needs DITSERVE_TEST_MODELS (output of scripts/make_test_models.py) and PYTHONPATH=scripts. Checks:
  every block GEMM weight is float8_e4m3fn with a float32 per-output-feature scale; everything else bf16
  the scripted, saved and reloaded transformer equals the eager one (bitwise)
  vs diffusers' float32 FluxTransformer2DModel: normalised error < 0.08 and at most 1.5x the bf16 export's + 0.01
  fp8 vs the bf16 export: normalised error < 0.05
  export_flux refuses fp8 without bfloat16, and model.json names the weights ("fp8_e4m3")
"""
import io
import json
import os
import sys
import tempfile

import torch

import ditserve_export.ops  # noqa: F401  (registers the ditserve ops before torch.jit.load)
from ditserve_export.flux import ExportError, build_flux_transformer, export_flux
from ditserve_export.flux_transformer import Fp8Linear, flux_rope

FP8_GEMMS = ("attn.to_qkv", "attn.add_qkv_proj", "attn.to_out.0", "attn.to_add_out", "ff.net.0.proj", "ff.net.2",
             "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out")


def nerr(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def inputs(cfg, seed: int):
    g = torch.Generator().manual_seed(seed)
    h, w, t = 6, 8, 11
    ids = torch.zeros(t + h * w, 3)
    ids[t:, 1] = torch.arange(h * w) // w
    ids[t:, 2] = torch.arange(h * w) % w
    cos, sin = flux_rope(ids, cfg["axes_dims_rope"])
    return (torch.randn(1, h * w, cfg["in_channels"], generator=g), torch.randn(1, t, cfg["joint_attention_dim"], generator=g),
            torch.randn(1, cfg["pooled_projection_dim"], generator=g), torch.tensor([0.7]), torch.tensor([3.5]),
            cos, sin, ids)


def check_variant(src: str) -> None:
    from diffusers import FluxTransformer2DModel
    tdir = os.path.join(src, "transformer")
    with open(os.path.join(tdir, "config.json")) as f:
        cfg = json.load(f)
    fp8 = build_flux_transformer(tdir, torch.bfloat16, fp8=True)
    bf16 = build_flux_transformer(tdir, torch.bfloat16)
    for name, mod in fp8.named_modules():
        is_gemm = name.split(".", 2)[-1] in FP8_GEMMS and "blocks." in name
        assert isinstance(mod, Fp8Linear) == is_gemm or not isinstance(mod, torch.nn.Linear | Fp8Linear), name
    n8 = 0
    for name, p in fp8.named_parameters():
        if name.endswith(".weight") and isinstance(fp8.get_submodule(name[:-7]), Fp8Linear):
            assert p.dtype == torch.float8_e4m3fn, name
            assert fp8.get_parameter(name + "_scale").dtype == torch.float32, name
            n8 += 1
        elif not name.endswith("weight_scale"):
            assert p.dtype == torch.bfloat16, (name, p.dtype)
    assert n8 == 8 * cfg["num_layers"] + 3 * cfg["num_single_layers"], n8

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(fp8), buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    ref = FluxTransformer2DModel.from_pretrained(tdir).eval()
    for seed in (0, 1):
        x, e, pooled, t, g, cos, sin, ids = inputs(cfg, seed)
        b = torch.bfloat16
        with torch.no_grad():
            want = ref(hidden_states=x, encoder_hidden_states=e, pooled_projections=pooled, timestep=t,
                       guidance=g if cfg["guidance_embeds"] else None, txt_ids=ids[:e.shape[1]],
                       img_ids=ids[e.shape[1]:], return_dict=False)[0]
            got = loaded(x.to(b), e.to(b), pooled.to(b), t, g, cos, sin).float()
            eager = fp8(x.to(b), e.to(b), pooled.to(b), t, g, cos, sin).float()
            base = bf16(x.to(b), e.to(b), pooled.to(b), t, g, cos, sin).float()
        assert torch.equal(got, eager), "scripted + reloaded != eager"
        e8, e16, d = nerr(got, want), nerr(base, want), nerr(got, base)
        print(f"  seed {seed}: fp8 vs fp32 diffusers {e8:.3e}, bf16 export vs fp32 {e16:.3e}, fp8 vs bf16 {d:.3e}")
        assert e8 < 0.08 and e8 <= 1.5 * e16 + 0.01, (e8, e16)
        assert d < 0.05, d


def check_export_flags(src: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        try:
            export_flux(src, out, dtype="float32", fp8=True)
            raise AssertionError("fp8 with float32 accepted")
        except ExportError as e:
            assert "bfloat16" in str(e), e
        mj = export_flux(src, out, dtype="bfloat16", fp8=True, verify=False)
        assert mj["transformer"]["weights"] == "fp8_e4m3", mj["transformer"]
        with open(os.path.join(out, "model.json")) as f:
            assert json.load(f)["transformer"]["weights"] == "fp8_e4m3"
        assert any(p.dtype == torch.float8_e4m3fn
                   for p in torch.jit.load(os.path.join(out, "transformer.pt")).parameters())


def main() -> int:
    root = os.environ.get("DITSERVE_TEST_MODELS")
    if not root or not os.path.isdir(root):
        print("DITSERVE_TEST_MODELS must point at the output of scripts/make_test_models.py", file=sys.stderr)
        return 2
    failed = 0
    for variant in ("dev", "schnell"):
        src = os.path.join(root, "src", f"flux-tiny-{variant}")
        for name, fn in ((f"[{variant}] fp8 transformer", check_variant), (f"[{variant}] fp8 export", check_export_flags)):
            try:
                fn(src)
                print(f"PASS {name}", flush=True)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {e!r}", flush=True)
                import traceback
                traceback.print_exc()
    print(f"{'FAILED' if failed else 'OK'}: {failed} failure(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
