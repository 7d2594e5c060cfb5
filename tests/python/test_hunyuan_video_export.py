#!/usr/bin/env python3
"""The HunyuanVideo export (docs/models/hunyuan_video.md) on the tiny model, float32, CPU.

Needs DITSERVE_TEST_MODELS (output of scripts/make_test_models.py) and PYTHONPATH=scripts.
  model.json: family, output video, num_frames 4k+1, crop_start = the template's token count - 2 (diffusers' rule)
  transformer.pt piecewise (masked text) vs diffusers HunyuanVideoTransformer3DModel      < 1e-5 relative
  text_encoder.pt vs LlamaModel hidden_states[-3] at two paddings                          < 1e-5
  vae_decoder.pt vs diffusers' decoder (tiling off) at 1 and 3 latent frames               < 1e-5
  model.json vae.parallel "rows" (the decoder's row-coupled ops are ditserve ops)
  export refuses a checkpoint that is not HunyuanVideo, naming the transformer class
"""
import json
import os
import sys
import tempfile

import torch

import ditserve_export.ops  # noqa: F401  (ditserve ops before torch.jit.load)
from ditserve_export.flux import ExportError
from ditserve_export.hunyuan_video import (_verify_transformer, export_hunyuan_video, hunyuan_rope,  # noqa: F401
                                           unpatchify)

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

sys.exit(1 if failures else 0)
