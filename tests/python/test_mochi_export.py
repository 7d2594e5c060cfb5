#!/usr/bin/env python3
"""The Mochi export's opt-in FP8 precision (export_model.py --family mochi --fp8) on the tiny model, CPU.

Needs DITSERVE_TEST_MODELS (output of scripts/make_test_models.py) and PYTHONPATH=scripts. Checks:
  every block GEMM (stacked q/k/v of both streams, output projections, both SwiGLU MLPs) is an Fp8Linear with
    e4m3 weights, float32 per-output-feature scales and a bias (zeros where diffusers has none); the rest bf16
  the transformer's error vs diffusers' float32 (masked prompt, CFG-style batch of 2) < 0.08, and vs the bf16
    export < 0.05 (FLUX's FP8 bars, tests/python/test_fp8_export.py: one e4m3 GEMM alone is ~3.7% off float32 on
    Gaussian data, and this tiny model's bf16 error is far lower than that, so a bound relative to it would not
    hold)
  --fp8 without bfloat16 is refused naming the reason; model.json "transformer.weights" is "fp8_e4m3"
(The float32 export's parity with diffusers is tests/mochi_parity_model_test.cc's.)
"""
import os

import torch

import ditserve_export.ops  # noqa: F401  (registers the ditserve ops before scripting)
from checklist import check, finish
from ditserve_export.flux_transformer import Fp8Linear
from ditserve_export.mochi import build_mochi_transformer, export_mochi, sample_inputs
from fp8_export_checks import refusal_and_manifest, weight_dtypes

MODELS = os.environ["DITSERVE_TEST_MODELS"]
SRC = os.path.join(MODELS, "src", "mochi-tiny")
TDIR = os.path.join(SRC, "transformer")
GEMMS = ("attn1.to_qkv", "attn1.add_qkv_proj", "attn1.to_out.0", "attn1.to_add_out", "ff.net.0.proj", "ff.net.2",
         "ff_context.net.0.proj", "ff_context.net.2")
torch.set_grad_enabled(False)


def block_gemms():
    model = build_mochi_transformer(TDIR, torch.bfloat16, fp8=True)
    got = {n for n, m in model.named_modules() if isinstance(m, Fp8Linear)}
    last = len(model.transformer_blocks) - 1  # its text stream ends after attention: no to_add_out, no ff_context
    want = {f"transformer_blocks.{i}.{g}" for i in range(last + 1) for g in GEMMS
            if i < last or not g.startswith(("attn1.to_add_out", "ff_context"))}
    assert got == want, sorted(got ^ want)
    zero_bias = model.transformer_blocks[0].attn1.to_qkv.bias
    assert bool((zero_bias == 0).all()), "a bias-less GEMM must get a zero bias"
    return weight_dtypes(model, got)


def error():
    from diffusers import MochiTransformer3DModel
    ref = MochiTransformer3DModel.from_pretrained(TDIR, torch_dtype=torch.float32).eval()
    x, txt, t, mask = sample_inputs(ref.config, seed=4)
    want = ref(x, txt, t, mask, return_dict=False)[0].double()
    outs = {}
    for label, fp8 in (("bf16", False), ("fp8", True)):
        scripted = torch.jit.script(build_mochi_transformer(TDIR, torch.bfloat16, fp8=fp8))
        outs[label] = scripted(x.bfloat16(), txt.bfloat16(), t, mask).double()

    def nerr(a, b):
        return ((a - b).norm() / b.norm()).item()

    e_bf16, e_fp8, e_vs_bf16 = nerr(outs["bf16"], want), nerr(outs["fp8"], want), nerr(outs["fp8"], outs["bf16"])
    assert e_fp8 < 0.08 and e_vs_bf16 < 0.05, (e_fp8, e_vs_bf16)
    return f"vs fp32: bf16 {e_bf16:.2e}, fp8 {e_fp8:.2e}; fp8 vs bf16 {e_vs_bf16:.2e}"


check("fp8 block GEMMs", block_gemms)
check("fp8 error vs diffusers fp32 < 0.08, vs the bf16 export < 0.05", error)
check("fp8 refusal and model.json", lambda: refusal_and_manifest(export_mochi, SRC))
finish()
