#!/usr/bin/env python3
"""The random-weight full-size checkpoint makers (scripts/make_fullsize_{mochi,cogvideox,hunyuan_video}.py) on the
CPU, so they cannot rot between GPU sessions: each maker runs whole with its models shrunk (the diffusers classes
and the text-encoder configs swapped for the tiny test ones; everything else — tokenizers, schedulers, variant
knobs, the pipeline layout, bf16 / fp16 weights — as at full size), then its family's exporter takes the directory
(with verification against diffusers). Checks per maker:
  the pipeline directory: model_index.json's pipeline class, the weights' dtype, the variant's released knobs
  export_<family>(src) succeeds (float32, verified) and model.json names the family
Needs PYTHONPATH=scripts.
"""
import json
import os
import sys
import tempfile

import torch
from checklist import check, finish
from safetensors import safe_open

import diffusers

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
sys.path.insert(0, SCRIPTS)


class Shrunk:
    """Within the block, diffusers.<name>(**kw) builds the class with `tiny` over kw (the maker's released knobs)."""

    def __init__(self, **tiny):
        self.tiny, self.saved = tiny, {}

    def __enter__(self):
        for name, cfg in self.tiny.items():
            cls = self.saved[name] = getattr(diffusers, name)
            setattr(diffusers, name, lambda cls=cls, cfg=cfg, **kw: cls(**{**kw, **cfg}))

    def __exit__(self, *exc):
        for name, cls in self.saved.items():
            setattr(diffusers, name, cls)
        torch.set_default_dtype(torch.float32)  # the makers set bf16 / fp16 process-wide
        torch.set_default_device("cpu")


def run_maker(module, argv):
    sys.argv = [module.__file__] + argv
    assert module.main() == 0


def weight_dtype(src: str, component: str):
    d = os.path.join(src, component)
    f = next(n for n in sorted(os.listdir(d)) if n.endswith(".safetensors"))
    with safe_open(os.path.join(d, f), "pt") as st:
        return st.get_tensor(next(iter(st.keys()))).dtype


def tiny_t5():
    from ditserve_export.tiny import tiny_t5_encoder
    return tiny_t5_encoder(32128)


def mochi(tmp):
    import make_fullsize_mochi as m
    from ditserve_export.mochi import export_mochi
    from ditserve_export.tiny_mochi import TINY_TRANSFORMER, TINY_VAE

    src, out = os.path.join(tmp, "mochi-src"), os.path.join(tmp, "mochi")
    m.fullsize_t5_encoder = lambda: tiny_t5().to(torch.get_default_dtype())
    with Shrunk(MochiTransformer3DModel=TINY_TRANSFORMER, AutoencoderKLMochi=TINY_VAE):
        run_maker(m, ["--out", src])
    index = json.load(open(os.path.join(src, "model_index.json")))
    assert index["_class_name"] == "MochiPipeline", index
    assert weight_dtype(src, "transformer") == torch.bfloat16
    sched = json.load(open(os.path.join(src, "scheduler", "scheduler_config.json")))
    assert sched["invert_sigmas"] is True, sched
    mj = export_mochi(src, out, dtype="float32", name="mochi-t")
    assert mj["family"] == "mochi"
    return "pipeline, bf16, invert_sigmas, exported"


def cogvideox(tmp, variant):
    import make_fullsize_cogvideox as m
    from ditserve_export.cogvideox import export_cogvideox

    src, out = os.path.join(tmp, f"cog-{variant}-src"), os.path.join(tmp, f"cog-{variant}")
    m.fullsize_t5_encoder = lambda: tiny_t5().to(torch.get_default_dtype())
    tiny_t = dict(num_attention_heads=2, attention_head_dim=16, num_layers=1, text_embed_dim=32, time_embed_dim=16,
                  in_channels=4, out_channels=4, sample_width=16, sample_height=16)
    if variant == "1.5":
        tiny_t["sample_frames"] = 9
    tiny_v = dict(block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2)
    with Shrunk(CogVideoXTransformer3DModel=tiny_t, AutoencoderKLCogVideoX=tiny_v):
        run_maker(m, ["--variant", variant, "--out", src])
    t = json.load(open(os.path.join(src, "transformer", "config.json")))
    want = {k: v for k, v in m.TRANSFORMER[variant].items() if k not in tiny_t}
    assert all(t[k] == v for k, v in want.items()), (want, t)
    sched = json.load(open(os.path.join(src, "scheduler", "scheduler_config.json")))
    assert sched["_class_name"] == m.SCHEDULER[variant][0], sched
    assert weight_dtype(src, "transformer") == (torch.float16 if variant == "2b" else torch.bfloat16)
    mj = export_cogvideox(src, out, dtype="float32", name=f"cog-{variant}")
    assert mj["family"] == "cogvideox" and mj["variant"] == variant, mj
    return f"variant knobs {sorted(want)}, {sched['_class_name']}, exported as {mj['variant']}"


def hunyuan_video(tmp):
    import make_fullsize_hunyuan_video as m
    from ditserve_export.hunyuan_video import export_hunyuan_video
    from ditserve_export.tiny import TINY_HUNYUAN_TRANSFORMER, TINY_HUNYUAN_VAE

    src, out = os.path.join(tmp, "hy-src"), os.path.join(tmp, "hy")
    small = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4)
    m.LLAMA.update(small, num_hidden_layers=3, num_key_value_heads=2)
    m.CLIP_L.update(small, num_hidden_layers=2, projection_dim=32)
    with Shrunk(HunyuanVideoTransformer3DModel=TINY_HUNYUAN_TRANSFORMER, AutoencoderKLHunyuanVideo=TINY_HUNYUAN_VAE):
        run_maker(m, ["--out", src])
    index = json.load(open(os.path.join(src, "model_index.json")))
    assert index["_class_name"] == "HunyuanVideoPipeline", index
    assert json.load(open(os.path.join(src, "text_encoder", "config.json")))["vocab_size"] == 128320
    assert json.load(open(os.path.join(src, "scheduler", "scheduler_config.json")))["shift"] == 7.0
    assert weight_dtype(src, "transformer") == torch.bfloat16
    mj = export_hunyuan_video(src, out, dtype="float32", name="hy-t")
    assert mj["family"] == "hunyuan_video", mj
    return "pipeline, Llama vocab 128320, shift 7, bf16, exported"


with tempfile.TemporaryDirectory() as tmp:
    check("make_fullsize_mochi", lambda: mochi(tmp))
    for v in ("2b", "5b", "1.5"):
        check(f"make_fullsize_cogvideox --variant {v}", lambda v=v: cogvideox(tmp, v))
    check("make_fullsize_hunyuan_video", lambda: hunyuan_video(tmp))
finish()
