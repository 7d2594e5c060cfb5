"""Export a diffusers Mochi-1 checkpoint directory (the genmo/mochi-1-preview layout, as
MochiPipeline.save_pretrained writes it) into a ditserve model directory (docs/models/mochi.md).

  transformer.pt   MochiTransformer (mochi_transformer.py), scripted
  text_encoder.pt  T5 encoder: (input_ids int64 [B, L], attention_mask int64 [B, L]) -> last_hidden_state
  vae_decoder.pt   MochiVaeDecode (mochi_vae.py), scripted: row-splittable over a group's ranks, decodable in
                   latent-frame chunks (decode_chunk)
  tokenizer/       the T5 SentencePiece model (ditserve's T5Tokenizer reads it)
"""
import gc
import json
import os
import shutil
import time
from typing import Dict, Optional

import torch
import torch.nn as nn

from . import ops as _ops  # noqa: F401
from .flux import (DTYPES, FORMAT_VERSION, FP8_TOL, ExportError, _check_close, _load_state_dict_in, _log, _merge,
                   _read_json, _tol, _transformer_weight_files, _validate_limits, require_fp8_dtype)
from .flux_transformer import quantize_fp8_state_dict
from .mochi_transformer import MochiTransformer, from_diffusers_state_dict
from .mochi_vae import MochiVaeDecode
from .vae import ParallelDecodeError

MAX_SEQUENCE_LENGTH = 256  # MochiPipeline's max_sequence_length


def build_mochi_transformer(tdir: str, dtype: torch.dtype, fp8: bool = False) -> MochiTransformer:
    """ditserve's MochiTransformer holding the checkpoint's weights in dtype; with fp8, the blocks' GEMM weights in
    float8 e4m3 with per-output-feature scales."""
    cfg = _read_json(os.path.join(tdir, "config.json"))
    if cfg.get("_class_name", "MochiTransformer3DModel") != "MochiTransformer3DModel":
        raise ExportError(f"transformer is {cfg.get('_class_name')}, expected MochiTransformer3DModel")
    try:
        with torch.device("meta"):
            model = MochiTransformer.from_diffusers_config(cfg, fp8=fp8)
    except ValueError as e:
        raise ExportError(str(e)) from e
    sd = from_diffusers_state_dict(_load_state_dict_in(_transformer_weight_files(tdir), dtype))
    if fp8:
        sd = quantize_fp8_state_dict(model, sd)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except (KeyError, RuntimeError) as e:
        raise ExportError(f"transformer weights in {tdir} do not match MochiTransformer3DModel: {e}") from e
    del sd
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            raise ExportError(f"transformer parameter {name} was not loaded")
    return model.eval().requires_grad_(False)


def sample_inputs(c, seed: int = 0):
    """A small float32 forward input for a transformer config: latents, text, timesteps and a text mask, as a CFG
    batch of 2 whose first prompt is padded (the second is not)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c.in_channels, 2, 4 * c.patch_size, 3 * c.patch_size, generator=g)
    txt = torch.randn(2, 9, c.text_embed_dim, generator=g)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 4:] = False
    return x, txt, torch.tensor([250.0, 250.0]), mask


def export_transformer(tdir: str, out_path: str, dtype: torch.dtype, verify: bool, fp8: bool = False) -> Dict:
    model = build_mochi_transformer(tdir, dtype, fp8)
    scripted = torch.jit.script(model)
    if verify and (dtype == torch.float32 or fp8):
        # against diffusers' own module (only at sizes where that is cheap: the tiny test models); fp8 against
        # diffusers in the activations' dtype, within the FP8 tolerance
        from diffusers import MochiTransformer3DModel
        ref = MochiTransformer3DModel.from_pretrained(tdir, torch_dtype=dtype).eval()
        if sum(p.numel() for p in ref.parameters()) < 50_000_000:
            x, txt, t, mask = sample_inputs(ref.config)
            with torch.no_grad():
                x, txt = x.to(dtype), txt.to(dtype)
                _check_close("transformer", scripted(x, txt, t, mask), ref(x, txt, t, mask, return_dict=False)[0],
                             FP8_TOL if fp8 else 1e-5)
        del ref
    scripted.save(out_path)
    cfg = _read_json(os.path.join(tdir, "config.json"))
    del scripted, model
    gc.collect()
    return cfg


class _T5Masked(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_t5_masked(tdir: str, out_path: str, dtype: torch.dtype, max_length: int, verify: bool) -> Dict:
    import warnings
    from transformers import T5EncoderModel

    model = T5EncoderModel.from_pretrained(tdir, dtype=dtype).eval()
    vocab = int(model.config.vocab_size)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, min(vocab, 1000), (1, max_length), generator=g)
    mask = torch.ones(1, max_length, dtype=torch.long)
    mask[0, max_length // 2:] = 0
    wrapper = _T5Masked(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, (ids, mask), check_trace=False, strict=False)
    from .flux import make_device_agnostic
    make_device_agnostic(traced)
    if verify:
        ids2 = torch.randint(3, min(vocab, 1000), (2, max_length), generator=g)
        mask2 = torch.ones(2, max_length, dtype=torch.long)
        mask2[0, 3:] = 0
        mask2[1] = 0  # force_zeros_for_empty_prompt: every key masked
        with torch.no_grad():
            _check_close("text_encoder", traced(ids2, mask2), wrapper(ids2, mask2), _tol(dtype))
    traced.save(out_path)
    info = {"max_sequence_length": int(max_length), "d_model": int(model.config.d_model)}
    del traced, wrapper, model
    gc.collect()
    return info


def export_mochi_vae(vdir: str, out_path: str, dtype: torch.dtype, verify: bool) -> Dict:
    from diffusers import AutoencoderKLMochi

    vae = AutoencoderKLMochi.from_pretrained(vdir, torch_dtype=dtype).eval()
    try:
        split = MochiVaeDecode(vae).eval()
    except ParallelDecodeError as e:
        raise ExportError(f"vae decoder cannot be exported for row-parallel decode: {e}") from e
    c = int(vae.config.latent_channels)
    g = torch.Generator().manual_seed(0)
    scripted = torch.jit.script(split)  # scripted, not traced: decode_chunk's caches are a list
    small = sum(p.numel() for p in vae.decoder.parameters()) < 5_000_000
    if verify and small:  # the full-size decoder is ~10 s per frame on a CPU: verify the tiny ones
        for shape in ((1, c, 2, 4, 3), (1, c, 3, 2, 5)):
            z = torch.randn(*shape, generator=g).to(dtype)
            with torch.no_grad():
                want = vae.decode(z, return_dict=False)[0]
                _check_close(f"vae_decoder{list(shape)}", scripted(z), want, _tol(dtype))
                first, caches = scripted.decode_chunk(z[:, :, :1], [], True)
                rest, _ = scripted.decode_chunk(z[:, :, 1:], caches, False)
                _check_close(f"vae_decoder.decode_chunk{list(shape)}", torch.cat([first, rest], 2), want, _tol(dtype))
    scripted.save(out_path)
    cfg = vae.config
    if cfg.latents_mean is None or cfg.latents_std is None:
        raise ExportError(f"{vdir}/config.json needs latents_mean and latents_std (MochiPipeline de-normalises)")
    info = {"latent_channels": c, "scale_factor": int(vae.spatial_compression_ratio),
            "temporal_scale_factor": int(vae.temporal_compression_ratio),
            "scaling_factor": float(cfg.scaling_factor),
            "latents_mean": [float(v) for v in cfg.latents_mean], "latents_std": [float(v) for v in cfg.latents_std],
            "parallel": "rows"}
    del scripted, split, vae
    gc.collect()
    return info


def default_limits() -> Dict:
    return {
        "width": {"min": 64, "max": 1280, "multiple_of": 16, "default": 848},
        "height": {"min": 64, "max": 1280, "multiple_of": 16, "default": 480},
        # whole latent frames: the VAE turns k + 1 latent frames into 6k + 1 frames
        "num_frames": {"min": 7, "max": 169, "multiple_of": 6, "offset": 1, "default": 19},
        "num_inference_steps": {"min": 2, "max": 200, "default": 64},
        "default_guidance_scale": 4.5,
        "default_fps": 30,
        "max_prompt_chars": 4096,
    }


def export_mochi(src_dir: str, out_dir: str, dtype: str = "float32", name: Optional[str] = None,
                 t5_max_length: Optional[int] = None, limits: Optional[Dict] = None, verify: bool = True,
                 fp8: bool = False) -> Dict:
    require_fp8_dtype(fp8, dtype)
    if dtype not in DTYPES:
        raise ExportError(f"unsupported dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    tdtype = DTYPES[dtype]
    src_dir = os.path.abspath(src_dir)
    for sub in ("transformer/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer/spiece.model",
                "scheduler/scheduler_config.json", "model_index.json"):
        if not os.path.exists(os.path.join(src_dir, sub)):
            raise ExportError(f"missing {os.path.join(src_dir, sub)} (expected a diffusers Mochi pipeline directory, "
                              "as written by MochiPipeline.save_pretrained)")
    index = _read_json(os.path.join(src_dir, "model_index.json"))
    if index.get("_class_name", "MochiPipeline") != "MochiPipeline":
        raise ExportError(f"model_index.json names {index.get('_class_name')}, expected MochiPipeline")
    t5_len = int(t5_max_length or MAX_SEQUENCE_LENGTH)
    name = name or os.path.basename(src_dir.rstrip("/"))
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(os.path.join(out_dir, "model.json")):
        os.remove(os.path.join(out_dir, "model.json"))

    t0 = time.time()
    _log(f"{name}: transformer ({dtype}{', fp8 e4m3 block weights' if fp8 else ''})")
    tcfg = export_transformer(os.path.join(src_dir, "transformer"), os.path.join(out_dir, "transformer.pt"), tdtype,
                              verify, fp8)
    _log(f"text_encoder (T5, L={t5_len})  [{time.time() - t0:.1f}s]")
    t5 = export_t5_masked(os.path.join(src_dir, "text_encoder"), os.path.join(out_dir, "text_encoder.pt"), tdtype,
                          t5_len, verify)
    _log(f"vae decoder  [{time.time() - t0:.1f}s]")
    vae = export_mochi_vae(os.path.join(src_dir, "vae"), os.path.join(out_dir, "vae_decoder.pt"), tdtype, verify)
    dst = os.path.join(out_dir, "tokenizer")
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    shutil.copytree(os.path.join(src_dir, "tokenizer"), dst)

    lim = _merge(default_limits(), limits)
    _validate_limits(lim)
    heads = int(tcfg.get("num_attention_heads", 24))
    manifest = {
        "format_version": FORMAT_VERSION,
        "family": "mochi",
        "name": name,
        "output": "video",
        "cfg": "guidance_scale",
        "dtype": dtype,
        "transformer": {
            "file": "transformer.pt",
            "in_channels": int(tcfg.get("in_channels", 12)),
            "patch_size": int(tcfg.get("patch_size", 2)),
            "num_layers": int(tcfg.get("num_layers", 48)),
            "num_attention_heads": heads,
            "attention_head_dim": int(tcfg.get("attention_head_dim", 128)),
            "pooled_projection_dim": int(tcfg.get("pooled_projection_dim", 1536)),
            "text_embed_dim": int(tcfg.get("text_embed_dim", 4096)),
            "weights": "fp8_e4m3" if fp8 else dtype,
        },
        "text_encoder": {"file": "text_encoder.pt", **t5,
                         # MochiPipeline zeroes the ids and mask of an empty prompt when its config says so
                         "force_zeros_for_empty_prompt": bool(index.get("force_zeros_for_empty_prompt", True))},
        "tokenizer": {"spiece": "tokenizer/spiece.model"},
        "vae": {"file": "vae_decoder.pt", **vae},
        "scheduler": _read_json(os.path.join(src_dir, "scheduler", "scheduler_config.json")),
        "limits": lim,
    }
    with open(os.path.join(out_dir, "model.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(out_dir, "model.json.tmp"), os.path.join(out_dir, "model.json"))
    _log(f"done: {out_dir}  [{time.time() - t0:.1f}s]")
    return manifest
