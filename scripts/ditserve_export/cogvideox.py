"""Export a diffusers CogVideoX checkpoint directory (THUDM/CogVideoX-2b, -5b, CogVideoX1.5-5B layouts) into a
ditserve model directory (docs/model_format.md, docs/models/cogvideox.md).

  transformer.pt   torch.jit.script of cogvideox_transformer.CogVideoXTransformer (diffusers' weights and names)
  text_encoder.pt  traced T5 encoder: ids [B, 226] -> last_hidden_state
  vae_decoder.pt   cogvideox_vae.CogVaeDecode, scripted: AutoencoderKLCogVideoX's decoder per frame batch, its conv
                   cache as a tensor list, row-splittable over a group's ranks ("vae.parallel": "rows"):
                   first_odd(z [B,C,3,h,w]) / first_even(z [B,C,2,h,w]) / first_single(z [B,C,1,h,w])
                   -> (frames, cache), next(z [B,C,2,h,w], cache) -> (frames, cache)
                   (the engine runs AutoencoderKLCogVideoX._decode's loop over latent frame batches)
Components are exported one at a time in the target dtype; each is verified against diffusers unless
verify=False.
"""
import gc
import os
import shutil
import time
from typing import Dict, Optional

import torch

from . import ops as _ops  # noqa: F401
from .cogvideox_transformer import CogVideoXTransformer, from_diffusers_state_dict, full_config
from .flux_transformer import quantize_fp8_state_dict
from .cogvideox_vae import CogVaeDecode
from .vae import ParallelDecodeError
from .flux import (FP8_TOL, ExportError, _check_close, _load_state_dict_in, _log, _merge, _read_json, _require,
                   _transformer_weight_files, export_t5, write_manifest)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FORMAT_VERSION = 1
TEXT_LENGTH = 226  # CogVideoXPipeline's max_sequence_length


def variant_of(tcfg: Dict) -> str:
    """"2b" (sin-cos positions), "5b" (3-D RoPE) or "1.5" (RoPE + temporal patches), from the config."""
    if tcfg.get("patch_size_t"):
        return "1.5"
    return "5b" if tcfg.get("use_rotary_positional_embeddings") else "2b"


# The precision each variant runs in: 2b was trained in fp16; 5b / 1.5 overflow in fp16 (NaN, black video).
ALLOWED_DTYPES = {"2b": ("float16", "float32"), "5b": ("bfloat16", "float32"), "1.5": ("bfloat16", "float32")}


def _tol(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 3e-2



# ----------------------------------------------------------------------------------------------
# transformer
# ----------------------------------------------------------------------------------------------
def build_transformer(tdir: str, dtype: torch.dtype, fp8: bool = False) -> CogVideoXTransformer:
    """ditserve's CogVideoXTransformer holding the checkpoint's weights in dtype; with fp8, the blocks' GEMM weights
    in e4m3 (quantised from dtype, per output feature)."""
    cfg = _read_json(os.path.join(tdir, "config.json"))
    try:
        with torch.device("meta"):
            model = CogVideoXTransformer(cfg, fp8=fp8)
    except ValueError as e:
        raise ExportError(f"{tdir}: {e}") from e
    sd = from_diffusers_state_dict(_load_state_dict_in(_transformer_weight_files(tdir), dtype))
    if fp8:
        sd = quantize_fp8_state_dict(model, sd)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except (KeyError, RuntimeError) as e:
        raise ExportError(f"transformer weights in {tdir} do not match CogVideoXTransformer3DModel: {e}") from e
    del sd
    return model.eval().requires_grad_(False)


def export_transformer(src: str, out_path: str, dtype: torch.dtype, verify: bool, fp8: bool = False) -> Dict:
    tdir = os.path.join(src, "transformer")
    cfg = _read_json(os.path.join(tdir, "config.json"))
    model = build_transformer(tdir, dtype, fp8)
    scripted = torch.jit.script(model)
    if verify:
        _verify_transformer(tdir, scripted, cfg, dtype, FP8_TOL if fp8 else _tol(dtype))
    scripted.save(out_path)
    del scripted, model
    gc.collect()
    return full_config(cfg)


def _verify_transformer(tdir: str, scripted, cfg: Dict, dtype: torch.dtype, tol: float) -> None:
    from diffusers import CogVideoXTransformer3DModel
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline

    ref = CogVideoXTransformer3DModel.from_pretrained(tdir, torch_dtype=dtype).eval()
    c = full_config(cfg)
    p, pt = int(c["patch_size"]), int(c["patch_size_t"] or 1)
    g = torch.Generator().manual_seed(0)
    # a small grid other than the config's sample size (two latent frame patches, 2x3 patches)
    frames, h, w = 2 * pt, 2 * p, 3 * p
    latents = torch.randn(1, frames, int(c["in_channels"]), h, w, generator=g).to(dtype)
    text = torch.randn(1, int(c["max_text_seq_length"]), int(c["text_embed_dim"]), generator=g).to(dtype)
    t = torch.tensor([981])
    rotary = None
    if c["use_rotary_positional_embeddings"]:
        # the pipeline's own rotary helper, on a stand-in object carrying what it reads
        class _Stub:
            vae_scale_factor_spatial = 1
            transformer = ref
        rotary = CogVideoXPipeline._prepare_rotary_positional_embeddings(_Stub(), h, w, frames, torch.device("cpu"))
        got_cos, got_sin = scripted.rotary(frames, h, w)
        _check_close("transformer.rotary cos", got_cos, rotary[0], 0.0)
        _check_close("transformer.rotary sin", got_sin, rotary[1], 0.0)
    with torch.no_grad():
        want = ref(hidden_states=latents, encoder_hidden_states=text, timestep=t, image_rotary_emb=rotary,
                   return_dict=False)[0]
        got = scripted(latents, text, t)
    _check_close("transformer", got, want, tol)
    del ref


# ----------------------------------------------------------------------------------------------
# vae
# ----------------------------------------------------------------------------------------------
def decode_in_batches(module, z: torch.Tensor) -> torch.Tensor:
    """AutoencoderKLCogVideoX._decode's loop over the traced methods (what the engine does)."""
    n = z.shape[2]
    batch = 2
    out, cache = [], None
    for i in range(max(n // batch, 1)):
        rem = n % batch
        zi = z[:, :, batch * i + (0 if i == 0 else rem):batch * (i + 1) + rem]
        if cache is None:
            fn = module.first_single if zi.shape[2] == 1 else module.first_odd if zi.shape[2] % 2 else module.first_even
            x, cache = fn(zi)
        else:
            x, cache = module.next(zi, cache)
        out.append(x)
    return torch.cat(out, dim=2)


def export_vae_decoder(src: str, out_path: str, dtype: torch.dtype, verify: bool) -> Dict:
    from diffusers import AutoencoderKLCogVideoX

    vae = AutoencoderKLCogVideoX.from_pretrained(os.path.join(src, "vae"), torch_dtype=dtype).eval()
    if vae.num_latent_frames_batch_size != 2:
        raise ExportError(f"vae: num_latent_frames_batch_size {vae.num_latent_frames_batch_size} (expected 2)")
    c = int(vae.config.latent_channels)
    try:
        scripted = torch.jit.script(CogVaeDecode(vae).eval())
    except ParallelDecodeError as e:
        raise ExportError(f"vae decoder cannot be exported for row-parallel decode: {e}") from e
    if verify:
        g = torch.Generator().manual_seed(0)
        for shape in ((1, c, 5, 6, 4), (1, c, 4, 4, 8), (1, c, 1, 6, 6)):
            z = torch.randn(*shape, generator=g).to(dtype)
            with torch.no_grad():
                _check_close(f"vae_decoder{list(shape)}", decode_in_batches(scripted, z),
                             vae.decode(z, return_dict=False)[0], _tol(dtype))
    scripted.save(out_path)
    cfg = vae.config
    info = {"latent_channels": c, "scale_factor": 2 ** (len(cfg.block_out_channels) - 1),
            "temporal_compression_ratio": int(cfg.temporal_compression_ratio),
            "scaling_factor": float(cfg.scaling_factor), "frame_batch_size": 2, "parallel": "rows"}
    del scripted, vae
    gc.collect()
    return info


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------
def default_limits(variant: str, scale: int, patch: int) -> Dict:
    """num_frames 8k+1: an odd number of latent frames ((F - 1) / 4 + 1), the only counts the frame-batched VAE
    decodes to F frames (an even count decodes to 4 per latent frame: 13 frames would come back as 16)."""
    m = scale * patch
    if variant == "1.5":
        size = {"width": (256, 1360, 1360), "height": (256, 768, 768)}
        frames = {"min": 9, "max": 161, "multiple_of": 8, "offset": 1, "default": 81}
    else:
        size = {"width": (256, 1360, 720), "height": (256, 1360, 480)}
        frames = {"min": 9, "max": 49, "multiple_of": 8, "offset": 1, "default": 49}
    lim = {k: {"min": lo, "max": hi, "multiple_of": m, "default": d} for k, (lo, hi, d) in size.items()}
    lim.update({"num_frames": frames, "num_inference_steps": {"min": 1, "max": 100, "default": 50},
                "default_guidance_scale": 6.0, "default_fps": 16 if variant == "1.5" else 8,
                "max_prompt_chars": 4096})
    return lim


def export_cogvideox(src_dir: str, out_dir: str, dtype: Optional[str] = None, name: Optional[str] = None,
                     limits: Optional[Dict] = None, verify: bool = True, **_unused) -> Dict:
    """Write the ditserve model directory for the diffusers CogVideoX pipeline at src_dir; returns model.json.
    dtype: None = the variant's precision (2b float16, 5b / 1.5 bfloat16); float32 for tests."""
    fp8 = bool(_unused.pop("fp8", False))
    src_dir = os.path.abspath(src_dir)
    if not os.path.isdir(src_dir):
        raise ExportError(f"source directory {src_dir} does not exist")
    for sub in ("transformer/config.json", "vae/config.json", "text_encoder/config.json",
                "tokenizer/spiece.model", "scheduler/scheduler_config.json"):
        _require(os.path.join(src_dir, sub))
    tcfg = _read_json(os.path.join(src_dir, "transformer/config.json"))
    if tcfg.get("_class_name", "CogVideoXTransformer3DModel") != "CogVideoXTransformer3DModel":
        raise ExportError(f"transformer is {tcfg.get('_class_name')}, expected CogVideoXTransformer3DModel")
    variant = variant_of(tcfg)
    dtype = dtype or ("float16" if variant == "2b" else "bfloat16")
    if dtype not in ALLOWED_DTYPES[variant]:
        raise ExportError(f"CogVideoX {variant} runs in {ALLOWED_DTYPES[variant][0]} (or float32), not {dtype}: "
                          f"{'fp16 overflows in 5b / 1.5 (NaN, black video)' if dtype == 'float16' else 'trained in fp16'}")
    if fp8 and dtype != "bfloat16":
        raise ExportError(f"fp8 weights need dtype bfloat16 (5b / 1.5: the activations' type), got {dtype!r}")
    tdtype = DTYPES[dtype]
    name = name or os.path.basename(src_dir.rstrip("/"))
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(os.path.join(out_dir, "model.json")):
        os.remove(os.path.join(out_dir, "model.json"))

    t0 = time.time()
    _log(f"{name}: transformer (CogVideoX {variant}, {dtype}{', fp8 e4m3 block weights' if fp8 else ''})")
    c = export_transformer(src_dir, os.path.join(out_dir, "transformer.pt"), tdtype, verify, fp8)
    _log(f"text_encoder (T5, L={TEXT_LENGTH})  [{time.time() - t0:.1f}s]")
    t5 = export_t5(src_dir, os.path.join(out_dir, "text_encoder.pt"), tdtype, TEXT_LENGTH, verify,
                   subfolder="text_encoder")
    _log(f"vae decoder  [{time.time() - t0:.1f}s]")
    vae = export_vae_decoder(src_dir, os.path.join(out_dir, "vae_decoder.pt"), tdtype, verify)
    dst = os.path.join(out_dir, "tokenizer")
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    shutil.copytree(os.path.join(src_dir, "tokenizer"), dst)

    lim = _merge(default_limits(variant, vae["scale_factor"], int(c["patch_size"])), limits)
    manifest = {
        "format_version": FORMAT_VERSION,
        "family": "cogvideox",
        "name": name,
        "variant": variant,
        "output": "video",
        "cfg": "guidance_scale",
        "dtype": dtype,
        "transformer": {
            "file": "transformer.pt",
            "in_channels": int(c["in_channels"]), "out_channels": int(c["out_channels"]),
            "num_layers": int(c["num_layers"]),
            "num_attention_heads": int(c["num_attention_heads"]),
            "attention_head_dim": int(c["attention_head_dim"]),
            "patch_size": int(c["patch_size"]), "patch_size_t": int(c["patch_size_t"] or 0),
            "text_embed_dim": int(c["text_embed_dim"]),
            "use_rotary_positional_embeddings": bool(c["use_rotary_positional_embeddings"]),
            "sample_height": int(c["sample_height"]), "sample_width": int(c["sample_width"]),
            "weights": "fp8_e4m3" if fp8 else dtype,
        },
        "text_encoder": {"file": "text_encoder.pt", "max_sequence_length": t5["max_sequence_length"],
                         "d_model": t5["d_model"]},
        "tokenizer": {"spiece": "tokenizer/spiece.model"},
        "vae": {"file": "vae_decoder.pt", **vae},
        "scheduler": _read_json(os.path.join(src_dir, "scheduler", "scheduler_config.json")),
        "limits": lim,
    }
    write_manifest(out_dir, manifest)
    _log(f"done: {out_dir}  [{time.time() - t0:.1f}s]")
    return manifest
