#!/usr/bin/env python3
"""The CogVideoX exports (2b, 5b, 1.5 tiny models) against diffusers, float32, CPU; and what the exporter refuses.

Needs DITSERVE_TEST_MODELS (scripts/make_test_models.py) and PYTHONPATH=scripts. Checks, per variant:
  model.json: family, variant, output video, cfg rule, dtype, default fps (8 for 1.0, 16 for 1.5)
  transformer.pt pieces (embed, blocks split at 1, head, unpatchify) vs diffusers' transformer   rel < 1e-5
  transformer.pt rotary / sincos tables vs the pipeline's / the patch embedding's                 == 0
  vae_decoder.pt batched decode (odd and even first batch) vs AutoencoderKLCogVideoX.decode       rel < 1e-5
and that a float16 export of 5b / 1.5, a bfloat16 export of 2b and --fp8 are refused naming the reason.
"""
import json
import os
import tempfile

import torch
from checklist import check, finish

import ditserve_export.ops  # noqa: F401
from ditserve_export.cogvideox import decode_in_batches, export_cogvideox
from ditserve_export.flux import ExportError

MODELS = os.environ["DITSERVE_TEST_MODELS"]


def rel_err(got, want) -> float:
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()


def variant_checks(variant: str):
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline

    name = f"cogvideox-tiny-{variant}"
    out, src = os.path.join(MODELS, name), os.path.join(MODELS, "src", name)
    with open(os.path.join(out, "model.json")) as f:
        mj = json.load(f)

    def manifest():
        assert mj["family"] == "cogvideox" and mj["variant"] == variant, mj
        assert mj["output"] == "video" and mj["cfg"] == "guidance_scale" and mj["dtype"] == "float32"
        assert mj["limits"]["default_fps"] == (16 if variant == "1.5" else 8)
        assert mj["text_encoder"]["max_sequence_length"] == 226
        return "ok"

    check(f"{variant} model.json", manifest)
    ref = CogVideoXTransformer3DModel.from_pretrained(os.path.join(src, "transformer")).eval()
    ts = torch.jit.load(os.path.join(out, "transformer.pt"))
    pt = ref.config.patch_size_t or 1
    frames, h, w = 2 * pt, 4, 6
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(2, frames, ref.config.in_channels, h, w, generator=g)
    text = torch.randn(2, 226, ref.config.text_embed_dim, generator=g)
    t = torch.tensor([999, 500])

    def pieces():
        rotary = None
        pos = None
        if ref.config.use_rotary_positional_embeddings:
            class _Stub:
                vae_scale_factor_spatial = 1
                transformer = ref
            rotary = CogVideoXPipeline._prepare_rotary_positional_embeddings(_Stub(), h, w, frames, torch.device("cpu"))
            cos, sin = ts.rotary(frames, h, w)
            assert torch.equal(cos, rotary[0]) and torch.equal(sin, rotary[1]), "rotary tables differ"
        else:
            pos = ts.sincos_positions(frames, h, w)
            want = ref.patch_embed._get_positional_embeddings(h, w, (frames - 1) * 4 + 1)[0, 226:]
            assert torch.equal(pos.to(want.dtype), want), "sin-cos positions differ"
        with torch.no_grad():
            want = ref(hidden_states=latents, encoder_hidden_states=text, timestep=t, image_rotary_emb=rotary,
                       return_dict=False)[0]
            emb = ts.time_embedding_of(t)
            video, txt = ts.embed_video(latents, pos), ts.embed_text(text)
            cos_sin = (None, None) if rotary is None else rotary
            video, txt = ts.blocks(0, 1, video, txt, emb, cos_sin[0], cos_sin[1], None)
            video, txt = ts.blocks(1, ref.config.num_layers, video, txt, emb, cos_sin[0], cos_sin[1], None)
            got = ts.unpatchify(ts.head(video, emb), frames, h, w)
        e = rel_err(got, want)
        assert e < 1e-5, f"rel err {e:.3g}"
        return f"rel err {e:.3g}"

    check(f"{variant} transformer pieces vs diffusers", pieces)

    def vae():
        ref_vae = AutoencoderKLCogVideoX.from_pretrained(os.path.join(src, "vae")).eval()
        traced = torch.jit.load(os.path.join(out, "vae_decoder.pt"))
        errs = []
        for n in (3, 4):  # odd and even first frame batch
            z = torch.randn(1, 4, n, 4, 6, generator=g)
            with torch.no_grad():
                errs.append(rel_err(decode_in_batches(traced, z), ref_vae.decode(z, return_dict=False)[0]))
        assert max(errs) < 1e-5, errs
        return f"rel errs {errs}"

    check(f"{variant} vae decode vs diffusers", vae)


def refusals():
    def refuse(variant, **kw):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                export_cogvideox(os.path.join(MODELS, "src", f"cogvideox-tiny-{variant}"), tmp, **kw)
            except ExportError as e:
                return str(e)
        raise AssertionError(f"{variant} {kw} was exported")

    def dtypes():
        m5 = refuse("5b", dtype="float16")
        assert "fp16 overflows" in m5, m5
        assert "fp16 overflows" in refuse("1.5", dtype="float16")
        m2 = refuse("2b", dtype="bfloat16")
        assert "float16" in m2, m2
        assert "fp8" in refuse("2b", dtype="float32", fp8=True)
        return m5

    check("dtype / fp8 refusals", dtypes)


for v in ("2b", "5b", "1.5"):
    variant_checks(v)
refusals()
finish()
