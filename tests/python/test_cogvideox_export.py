#!/usr/bin/env python3
"""The CogVideoX exports (2b, 5b, 1.5 tiny models) against diffusers, float32, CPU; and what the exporter refuses.

Needs DITSERVE_TEST_MODELS (scripts/make_test_models.py) and PYTHONPATH=scripts. Checks, per variant:
  model.json: family, variant, output video, cfg rule, dtype, default fps (8 for 1.0, 16 for 1.5)
  transformer.pt pieces (embed, blocks split at 1, head, unpatchify) vs diffusers' transformer   rel < 1e-5
  transformer.pt rotary / sincos tables vs the pipeline's / the patch embedding's                 == 0
  vae_decoder.pt batched decode (odd and even first batch) vs AutoencoderKLCogVideoX.decode       rel < 1e-5
that a float16 export of 5b / 1.5, a bfloat16 export of 2b and --fp8 without bfloat16 are refused naming the
reason, and the opt-in FP8 export (5b-style): e4m3 block GEMMs, error vs diffusers' fp32 near the bf16 export's.
"""
import json
import os
import tempfile

import torch
from checklist import check, finish

import ditserve_export.ops  # noqa: F401
from ditserve_export.cogvideox import decode_in_batches, export_cogvideox
from ditserve_export.flux import ExportError
from fp8_export_checks import weight_dtypes

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


def fp8_export():
    """The opt-in FP8 export of 5b-style: e4m3 block GEMM weights with per-row scales, model.json names them, and
    the transformer's error against diffusers' float32 stays near the bf16 export's."""
    from diffusers import CogVideoXTransformer3DModel

    from ditserve_export.cogvideox import build_transformer
    from ditserve_export.flux_transformer import Fp8Linear

    src = os.path.join(MODELS, "src", "cogvideox-tiny-5b")
    tdir = os.path.join(src, "transformer")

    def weights():
        m = build_transformer(tdir, torch.bfloat16, fp8=True)
        fp8 = {n for n, mod in m.named_modules() if isinstance(mod, Fp8Linear)}
        want = {f"transformer_blocks.{i}.{g}" for i in range(len(m.transformer_blocks))
                for g in ("attn1.to_qkv", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2")}
        assert fp8 == want, sorted(fp8 ^ want)
        return weight_dtypes(m, fp8)

    def error():
        ref = CogVideoXTransformer3DModel.from_pretrained(tdir, torch_dtype=torch.float32).eval()
        g = torch.Generator().manual_seed(3)
        lat = torch.randn(2, 3, ref.config.in_channels, 4, 6, generator=g)
        txt = torch.randn(2, ref.config.max_text_seq_length, ref.config.text_embed_dim, generator=g)
        t = torch.tensor([900, 300])
        outs = {}
        for name, fp8 in (("bf16", False), ("fp8", True)):
            m = torch.jit.script(build_transformer(tdir, torch.bfloat16, fp8=fp8))
            cos, sin = m.rotary(3, 4, 6)
            with torch.no_grad():
                outs[name] = m(lat.bfloat16(), txt.bfloat16(), t).float()
        with torch.no_grad():
            want = ref(hidden_states=lat, encoder_hidden_states=txt, timestep=t, image_rotary_emb=(cos, sin),
                       return_dict=False)[0]
        e = {k: ((v - want).norm() / want.norm()).item() for k, v in outs.items()}
        assert e["fp8"] < 0.08 and e["fp8"] <= 1.5 * e["bf16"] + 0.01, e
        return f"vs fp32: bf16 {e['bf16']:.2e}, fp8 {e['fp8']:.2e}"

    def manifest():
        with tempfile.TemporaryDirectory() as tmp:
            mj = export_cogvideox(src, tmp, dtype="bfloat16", fp8=True)
            assert mj["transformer"]["weights"] == "fp8_e4m3", mj["transformer"]
            with open(os.path.join(tmp, "model.json")) as f:
                assert json.load(f)["transformer"]["weights"] == "fp8_e4m3"
        return "model.json weights fp8_e4m3 (the export's own check vs diffusers passed)"

    check("fp8 block weights", weights)
    check("fp8 error vs diffusers fp32", error)
    check("fp8 export manifest", manifest)


for v in ("2b", "5b", "1.5"):
    variant_checks(v)
refusals()
fp8_export()
finish()
