#!/usr/bin/env python3
"""The HunyuanVideo export (docs/models/hunyuan_video.md) on the tiny model, float32, CPU.

Needs DITSERVE_TEST_MODELS (output of scripts/make_test_models.py) and PYTHONPATH=scripts.
  model.json: family, output video, num_frames 4k+1, crop_start = the template's token count - 2 (diffusers' rule)
  transformer.pt piecewise (masked text) vs diffusers HunyuanVideoTransformer3DModel      < 1e-5 relative
  text_encoder.pt vs LlamaModel hidden_states[-3] at two paddings                          < 1e-5
  vae_decoder.pt vs diffusers' decoder (tiling off) at 1 and 3 latent frames               < 1e-5
  model.json vae.parallel "rows" (the decoder's row-coupled ops are ditserve ops)
  export refuses a checkpoint that is not HunyuanVideo, naming the transformer class
  the opt-in FP8 export: every block GEMM (FLUX's set) e4m3 with float32 per-feature scales, the rest bf16; the
    transformer's error vs diffusers' float32 < 0.08 and near the bf16 export's; model.json "weights": "fp8_e4m3";
    --fp8 without bfloat16 refused
"""
import json
import os
import sys
import tempfile

import torch

import ditserve_export.ops  # noqa: F401  (ditserve ops before torch.jit.load)
from ditserve_export.flux import ExportError
from ditserve_export.hunyuan_video import _verify_transformer, export_hunyuan_video

MODELS = os.environ["DITSERVE_TEST_MODELS"]
MODEL = os.path.join(MODELS, "hunyuan-video-tiny")
SRC = os.path.join(MODELS, "src", "hunyuan-video-tiny")
failures = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}", flush=True)
    if not ok:
        failures.append(name)


def rel(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()


torch.set_grad_enabled(False)
m = json.load(open(os.path.join(MODEL, "model.json")))
check("family/output", m["family"] == "hunyuan_video" and m["output"] == "video")
nf = m["limits"]["num_frames"]
check("num_frames 4k+1", nf["multiple_of"] == 4 and nf["offset"] == 1, str(nf))
check("vae.parallel rows", m["vae"].get("parallel") == "rows", str(m["vae"].get("parallel")))

from transformers import AutoTokenizer, LlamaModel  # noqa: E402
tok = AutoTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
te = m["text_encoder"]
check("crop_start", te["crop_start"] == len(tok(te["template"]).input_ids) - 2, str(te["crop_start"]))

err = _verify_transformer(SRC, torch.jit.load(os.path.join(MODEL, "transformer.pt")), torch.float32)
check("transformer vs diffusers", err < 1e-5, f"{err:.2g}")

llama = torch.jit.load(os.path.join(MODEL, "text_encoder.pt"))
ref = LlamaModel.from_pretrained(os.path.join(SRC, "text_encoder")).eval()
length = te["crop_start"] + te["max_sequence_length"]
for prompt in ("a cat", "A long prompt about a red boat on a calm lake with mountains and the morning sun " * 3):
    enc = tok(te["template"].format(prompt), max_length=length, padding="max_length", truncation=True,
              return_tensors="pt")
    want = ref(input_ids=enc.input_ids, attention_mask=enc.attention_mask, output_hidden_states=True).hidden_states[-3]
    e = rel(llama(enc.input_ids, enc.attention_mask), want)
    check(f"text_encoder ({int(enc.attention_mask.sum())} tokens)", e < 1e-5, f"{e:.2g}")

from diffusers import AutoencoderKLHunyuanVideo  # noqa: E402
vae = AutoencoderKLHunyuanVideo.from_pretrained(os.path.join(SRC, "vae")).eval()
vae.use_framewise_decoding = False
dec = torch.jit.load(os.path.join(MODEL, "vae_decoder.pt"))
for shape in ((1, 4, 1, 2, 3), (1, 4, 3, 3, 2)):
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    e = rel(dec(z), vae.decode(z, return_dict=False)[0])
    check(f"vae_decoder {list(shape)}", e < 1e-5, f"{e:.2g}")

with tempfile.TemporaryDirectory() as out:
    try:
        export_hunyuan_video(os.path.join(MODELS, "src", "flux-tiny-dev"), out)
        check("refuses FLUX", False, "no error")
    except ExportError as e:
        check("refuses FLUX", "HunyuanVideoPipeline" in str(e), str(e))
    check("no model.json after a refused export", not os.path.exists(os.path.join(out, "model.json")))

# --- the opt-in FP8 export -------------------------------------------------------------------------------------
from diffusers import HunyuanVideoTransformer3DModel  # noqa: E402

from ditserve_export.flux_transformer import Fp8Linear  # noqa: E402
from ditserve_export.hunyuan_video import build_transformer, forward_pieces, sample_inputs  # noqa: E402
from fp8_export_checks import refusal_and_manifest, weight_dtypes  # noqa: E402

FP8_GEMMS = {"transformer_blocks": ("attn.to_qkv", "attn.add_qkv_proj", "attn.to_out.0", "attn.to_add_out",
                                    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"),
             "single_transformer_blocks": ("attn.to_qkv", "proj_mlp", "proj_out")}
tdir = os.path.join(SRC, "transformer")
fp8_model = build_transformer(tdir, torch.bfloat16, fp8=True)
got = {n for n, mod in fp8_model.named_modules() if isinstance(mod, Fp8Linear)}
want = {f"{group}.{i}.{g}" for group, gemms in FP8_GEMMS.items() for i in range(len(getattr(fp8_model, group)))
        for g in gemms}
check("fp8: the block GEMMs are Fp8Linear", got == want, str(sorted(got ^ want)))
try:
    check("fp8: e4m3 weights, float32 scales, the rest bf16", True, weight_dtypes(fp8_model, got))
except AssertionError as e:
    check("fp8: e4m3 weights, float32 scales, the rest bf16", False, str(e))

ref = HunyuanVideoTransformer3DModel.from_pretrained(tdir, torch_dtype=torch.float32).eval()
x, txt, tmask, pooled, t, guid = sample_inputs(ref.config, seed=5)
want_out = ref(x, t, txt, tmask, pooled, guid, return_dict=False)[0].double()
b = torch.bfloat16
errs = {}
for label, fp8 in (("bf16", False), ("fp8", True)):
    mdl = torch.jit.script(build_transformer(tdir, b, fp8=fp8))
    out = forward_pieces(mdl, ref.config, x.to(b), txt.to(b), tmask, pooled.to(b), t, guid.to(b)).double()
    errs[label] = ((out - want_out).norm() / want_out.norm()).item()
check("fp8: error vs diffusers fp32 near the bf16 export's",
      errs["fp8"] < 0.08 and errs["fp8"] <= 1.5 * errs["bf16"] + 0.01,
      f"bf16 {errs['bf16']:.2e}, fp8 {errs['fp8']:.2e}")

try:
    check("fp8 refusal and model.json", True, refusal_and_manifest(export_hunyuan_video, SRC))
except AssertionError as e:
    check("fp8 refusal and model.json", False, str(e))

sys.exit(1 if failures else 0)
