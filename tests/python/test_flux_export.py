#!/usr/bin/env python3
"""Faithfulness of the FLUX export (docs/model_format.md) against diffusers / transformers, float32, CPU.

Needs DITSERVE_TEST_MODELS (output of scripts/make_test_models.py) and PYTHONPATH=scripts.
Tolerances (relative = max|got - want| / max|want|):
  transformer.pt forward vs diffusers FluxTransformer2DModel   < 1e-5
  piecewise conditioning/embed_*/blocks/head, step vs forward  == 0 (bitwise)
  conditioning of a T-step schedule vs each step alone          < 1e-6; vs diffusers' adaLN projections < 1e-5
  key_mask all-True vs None                                    < 1e-6
  masked text tokens vs dropping those tokens (image stream)   < 1e-5
  text_encoder.pt / text_encoder_2.pt / vae_decoder.pt         < 1e-5
  vae_decoder.pt row-coupled ops are ditserve's split-aware ops (halo_conv2d, group_norm, spatial_attention)
  rotary table flux_rope vs diffusers FluxPosEmbed             == 0
"""
import json
import os
import sys
import traceback

import torch

import ditserve_export.ops  # noqa: F401  (registers ditserve::attention before torch.jit.load)
from ditserve_export.flux_transformer import flux_rope

TOL = 1e-5
results = []  # (name, ok, detail)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()


def check(name: str, fn) -> None:
    try:
        detail = fn()
        results.append((name, True, detail or ""))
        print(f"PASS {name}: {detail or ''}", flush=True)
    except Exception as e:  # noqa: BLE001
        results.append((name, False, str(e)))
        print(f"FAIL {name}: {e}", flush=True)
        traceback.print_exc()


def expect_close(got, want, tol, what="rel err"):
    e = rel_err(got, want)
    assert e < tol, f"{what} {e:.3g} >= {tol:.0e}"
    return f"{what} {e:.2e} (tol {tol:.0e})"


def img_ids(h: int, w: int) -> torch.Tensor:
    """FluxPipeline._prepare_latent_image_ids for a packed grid h x w."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


def run_variant(root: str, variant: str) -> None:
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from diffusers.models.embeddings import FluxPosEmbed
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    name = f"flux-tiny-{variant}"
    src = os.path.join(root, "src", name)
    out = os.path.join(root, name)
    with open(os.path.join(out, "model.json")) as f:
        mj = json.load(f)
    tag = f"[{variant}]"

    def manifest():
        assert mj["format_version"] == 1 and mj["family"] == "flux" and mj["name"] == name
        assert mj["variant"] == variant and mj["dtype"] == "float32"
        assert mj["transformer"]["guidance_embeds"] == (variant == "dev")
        with open(os.path.join(src, "scheduler", "scheduler_config.json")) as f:
            assert mj["scheduler"] == json.load(f), "scheduler not verbatim"
        for key in ("transformer", "text_encoder", "text_encoder_2", "vae"):
            assert os.path.isfile(os.path.join(out, mj[key]["file"])), key
        for rel in (mj["tokenizer"]["vocab"], mj["tokenizer"]["merges"], mj["tokenizer_2"]["spiece"]):
            assert os.path.isfile(os.path.join(out, rel)), rel
        lim = mj["limits"]
        assert lim["width"]["multiple_of"] == 2 * mj["vae"]["scale_factor"] == 4
        assert lim["num_inference_steps"]["default"] == (4 if variant == "dev" else 2)
        assert mj["text_encoder_2"]["max_sequence_length"] == (512 if variant == "dev" else 256)
        assert mj["tokenizer_2"]["eos_token_id"] == 1 and mj["tokenizer_2"]["pad_token_id"] == 0
        return "fields, files, verbatim scheduler, limits"
    check(f"{tag} model.json", manifest)

    tcfg = mj["transformer"]
    ref_t = FluxTransformer2DModel.from_pretrained(os.path.join(src, "transformer")).eval()
    ts = torch.jit.load(os.path.join(out, "transformer.pt"))
    axes, theta = tcfg["axes_dims_rope"], tcfg["rope_theta"]
    L = mj["text_encoder_2"]["max_sequence_length"]
    sf = mj["vae"]["scale_factor"]
    g = torch.Generator().manual_seed(1)

    def inputs(width: int, height: int, T: int, B: int = 2):
        h, w = height // sf // 2, width // sf // 2
        x = torch.randn(B, h * w, tcfg["in_channels"], generator=g)
        e = torch.randn(B, T, tcfg["joint_attention_dim"], generator=g)
        p = torch.randn(B, tcfg["pooled_projection_dim"], generator=g)
        t = torch.tensor([0.93, 0.41][:B])
        gd = torch.tensor([3.5, 5.0][:B])
        txt_ids, iids = torch.zeros(T, 3), img_ids(h, w)
        return x, e, p, t, gd, txt_ids, iids

    with torch.no_grad():
        for (W, H) in ((64, 64), (96, 48)):
            x, e, p, t, gd, txt_ids, iids = inputs(W, H, L)
            ids = torch.cat([txt_ids, iids])

            def rope():
                c, s = flux_rope(ids, axes, theta)
                c2, s2 = FluxPosEmbed(theta, axes)(ids)
                assert c.dtype == torch.float32 and c.shape == (ids.shape[0], tcfg["attention_head_dim"])
                assert torch.equal(c, c2) and torch.equal(s, s2), "rope differs from FluxPosEmbed"
                return f"bitwise equal to FluxPosEmbed, shape {list(c.shape)}"
            check(f"{tag} rope {W}x{H}", rope)
            cos, sin = flux_rope(ids, axes, theta)

            want = ref_t(hidden_states=x, encoder_hidden_states=e, pooled_projections=p, timestep=t,
                         img_ids=iids, txt_ids=txt_ids, guidance=gd if variant == "dev" else None,
                         return_dict=False)[0]
            got = ts(x, e, p, t, gd, cos, sin)
            check(f"{tag} transformer forward {W}x{H} (B=2, T={L}, N={x.shape[1]})",
                  lambda: expect_close(got, want, TOL))
            # B = 1 takes the double blocks' one-buffer q/k/v path (the pipeline's case)
            check(f"{tag} transformer forward {W}x{H} B=1 == B=2 row 0",
                  lambda: expect_close(ts(x[:1], e[:1], p[:1], t[:1], gd[:1], cos, sin), got[:1], 1e-6))

            def pieces(m=None):
                """the pipeline's calls: conditioning, embed_text, then embed_image / blocks / head"""
                mod = ts.conditioning(p, t.unsqueeze(0), gd)[0]
                txt = ts.embed_text(e)
                img = ts.embed_image(x)
                img, txt = ts.double_blocks(0, 1, img, txt, mod, cos, sin, m)
                img, txt = ts.double_blocks(1, 2, img, txt, mod, cos, sin, m)
                img, txt = ts.single_blocks(0, 2, img, txt, mod, cos, sin, m)
                return ts.head(img, mod), img, txt, mod

            def piecewise():
                y, img, txt, mod = pieces()
                assert torch.equal(y, got), f"piecewise != forward (rel {rel_err(y, got):.2e})"
                assert torch.equal(ts.step(x, ts.embed_text(e), mod, cos, sin), got), "step != forward"
                # empty ranges are identities
                a, b = ts.double_blocks(2, 2, img, txt, mod, cos, sin, None)
                c, d = ts.single_blocks(1, 1, img, txt, mod, cos, sin, None)
                assert torch.equal(a, img) and torch.equal(b, txt) and torch.equal(c, img) and torch.equal(d, txt)
                return "bitwise equal"
            check(f"{tag} piecewise == forward {W}x{H}", piecewise)

            def mask_all_true():
                y = pieces(torch.ones(x.shape[0], ids.shape[0], dtype=torch.bool))[0]
                bit = "bitwise" if torch.equal(y, got) else "not bitwise"
                return expect_close(y, got, 1e-6) + f", {bit}"
            check(f"{tag} key_mask all-True == None {W}x{H}", mask_all_true)

        def mask_semantics():
            # masking the last k text tokens == removing them, for the image stream
            T, k = 24, 9
            x, e, p, t, gd, txt_ids, iids = inputs(64, 64, T)
            ids = torch.cat([txt_ids, iids])
            cos, sin = flux_rope(ids, axes, theta)
            m = torch.ones(x.shape[0], ids.shape[0], dtype=torch.bool)
            m[:, T - k:T] = False
            mod = ts.conditioning(p, t.unsqueeze(0), gd)[0]
            img, txt = ts.double_blocks(0, 2, ts.embed_image(x), ts.embed_text(e), mod, cos, sin, m)
            img, txt = ts.single_blocks(0, 2, img, txt, mod, cos, sin, m)
            y = ts.head(img, mod)
            ids2 = torch.cat([txt_ids[:T - k], iids])
            c2, s2 = flux_rope(ids2, axes, theta)
            y2 = ts(x, e[:, :T - k], p, t, gd, c2, s2)
            return expect_close(y, y2, TOL)
        check(f"{tag} key_mask False == token removed", mask_semantics)

        def conditioning_schedule():
            # a request's whole schedule in one call == each step alone; the layout is the blocks' adaLN
            # projections of silu(temb) in block order, then the head's
            x, e, p, t, gd, _, _ = inputs(64, 64, L)
            sched = torch.tensor([[1.0, 0.9], [0.75, 0.6], [0.5, 0.45], [0.2, 0.1]])
            all_steps = ts.conditioning(p, sched, gd)
            dim = tcfg["num_attention_heads"] * tcfg["attention_head_dim"]
            width = dim * (12 * tcfg["num_layers"] + 3 * tcfg["num_single_layers"] + 2)
            assert list(all_steps.shape) == [4, x.shape[0], width], list(all_steps.shape)
            err = max(rel_err(all_steps[i], ts.conditioning(p, sched[i:i + 1], gd)[0]) for i in range(4))
            assert err < 1e-6, f"schedule vs per step rel {err:.2e}"
            tt = sched[2].to(torch.float32) * 1000
            temb = ref_t.time_text_embed(tt, gd * 1000, p) if variant == "dev" else ref_t.time_text_embed(tt, p)
            s_ = torch.nn.functional.silu(temb)
            parts = [f(s_) for blk in ref_t.transformer_blocks for f in (blk.norm1.linear, blk.norm1_context.linear)]
            parts += [blk.norm.linear(s_) for blk in ref_t.single_transformer_blocks] + [ref_t.norm_out.linear(s_)]
            return expect_close(all_steps[2], torch.cat(parts, dim=1), TOL) + f"; per step {err:.1e}"
        check(f"{tag} conditioning(schedule) == per step == diffusers' adaLN projections", conditioning_schedule)
    del ref_t, ts

    # ---- text encoders
    prompts = ["a photo of a cat sitting on a wooden table", "An astronaut riding a horse, 4k, detailed!"]
    tok = CLIPTokenizer.from_pretrained(os.path.join(src, "tokenizer"))
    tok_c = CLIPTokenizer(os.path.join(out, mj["tokenizer"]["vocab"]), os.path.join(out, mj["tokenizer"]["merges"]))
    clip = CLIPTextModel.from_pretrained(os.path.join(src, "text_encoder")).eval()
    te = torch.jit.load(os.path.join(out, "text_encoder.pt"))

    def clip_check():
        ids = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        ids_c = tok_c(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        assert torch.equal(ids, ids_c), "copied tokenizer files tokenize differently"
        with torch.no_grad():
            msgs = [expect_close(te(ids[i:i + 1]), clip(input_ids=ids[i:i + 1]).pooler_output, TOL, "B=1 rel err")
                    for i in range(2)]
            msgs.append(expect_close(te(ids), clip(input_ids=ids).pooler_output, TOL, "B=2 rel err"))
        assert list(te(ids).shape) == [2, mj["text_encoder"]["hidden_size"]]
        return "; ".join(msgs)
    check(f"{tag} text_encoder.pt == CLIPTextModel pooler_output", clip_check)

    tok2 = T5TokenizerFast.from_pretrained(os.path.join(src, "tokenizer_2"))
    t5 = T5EncoderModel.from_pretrained(os.path.join(src, "text_encoder_2")).eval()
    te2 = torch.jit.load(os.path.join(out, "text_encoder_2.pt"))

    def t5_check():
        ids = tok2(prompts, padding="max_length", max_length=L, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            msgs = [expect_close(te2(ids[i:i + 1]), t5(input_ids=ids[i:i + 1]).last_hidden_state, TOL,
                                 f"prompt{i} rel err") for i in range(2)]
        assert list(te2(ids[:1]).shape) == [1, L, mj["text_encoder_2"]["d_model"]]
        return "; ".join(msgs)
    check(f"{tag} text_encoder_2.pt == T5EncoderModel last_hidden_state (L={L})", t5_check)

    # ---- vae
    vae = AutoencoderKL.from_pretrained(os.path.join(src, "vae")).eval()
    vd = torch.jit.load(os.path.join(out, "vae_decoder.pt"))
    C = mj["vae"]["latent_channels"]
    for (h, w) in ((32, 32), (24, 48)):
        def vae_check(h=h, w=w):
            z = torch.randn(1, C, h, w, generator=g)
            with torch.no_grad():
                got, want = vd(z), vae.decode(z).sample
            assert list(got.shape) == [1, 3, h * sf, w * sf]
            return expect_close(got, want, TOL)
        check(f"{tag} vae_decoder.pt == vae.decode latents {h}x{w}", vae_check)

    def vae_split_ops():
        # Every row-coupled op of the decoder must be a split-aware ditserve op (scripts/ditserve_export/vae.py);
        # the only aten convolutions left are 1x1.
        assert mj["vae"].get("parallel") == "rows", "model.json vae.parallel != 'rows'"
        kinds = [n.kind() for n in vd.inlined_graph.nodes()]
        n_1x1 = sum(1 for m in vae.decoder.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1))
        n_1x1 += 1 if vae.post_quant_conv is not None else 0
        n_big = sum(1 for m in vae.decoder.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
        n_gn = sum(1 for m in vae.decoder.modules() if isinstance(m, torch.nn.GroupNorm))
        counts = {k: kinds.count(k) for k in ("ditserve::halo_conv2d", "ditserve::group_norm",
                                               "ditserve::spatial_attention", "aten::_convolution")}
        want = {"ditserve::halo_conv2d": n_big, "ditserve::group_norm": n_gn, "ditserve::spatial_attention": 1,
                "aten::_convolution": n_1x1}
        assert counts == want, f"graph has {counts}, want {want}"
        for k in ("aten::group_norm", "aten::scaled_dot_product_attention", "aten::conv2d"):
            assert k not in kinds, f"{k} left in the graph"
        return ", ".join(f"{k.split('::')[1]} x{v}" for k, v in counts.items())
    check(f"{tag} vae_decoder.pt uses the split-aware ops", vae_split_ops)

    def device_agnostic():
        for f in ("text_encoder.pt", "text_encoder_2.pt", "vae_decoder.pt", "transformer.pt"):
            m = torch.jit.load(os.path.join(out, f))
            codes = [m.code] + [getattr(m, meth).code for meth in ("conditioning", "embed_image", "embed_text",
                                                                         "double_blocks", "single_blocks", "head", "step")
                                if f == "transformer.pt"]
            for code in codes:
                assert '"cpu"' not in code, f"{f} has a baked-in cpu device"
        return "no cpu device constants in any graph"
    check(f"{tag} graphs are device-agnostic", device_agnostic)


def main() -> int:
    root = os.environ.get("DITSERVE_TEST_MODELS")
    if not root or not os.path.isdir(root):
        print("DITSERVE_TEST_MODELS must point at the output of scripts/make_test_models.py", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    for variant in ("dev", "schnell"):
        try:
            run_variant(root, variant)
        except Exception as e:  # noqa: BLE001  (setup failure counts as a failed check)
            traceback.print_exc()
            results.append((f"[{variant}] setup", False, str(e)))
    n_ok = sum(1 for r in results if r[1])
    n_bad = len(results) - n_ok
    print(f"\n{n_ok} passed, {n_bad} failed")
    for name, ok, detail in results:
        if not ok:
            print(f"  FAILED: {name}: {detail}")
    return 0 if n_bad == 0 and n_ok > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
