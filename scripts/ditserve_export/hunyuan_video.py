"""Export a diffusers HunyuanVideo checkpoint directory (hunyuanvideo-community/HunyuanVideo layout) into a
ditserve model directory (docs/model_format.md, docs/models/hunyuan_video.md).

Components are exported and freed one at a time, each directly in the target dtype (the 13B transformer: ~26 GB
in bfloat16, plus one safetensors shard). Every traced or scripted component is checked against the source
module at inputs other than the tracing ones; model.json is written last, atomically.
"""
import gc
import os
import time
from typing import Dict, Optional

import torch
import torch.nn as nn

from . import ops as _ops  # noqa: F401
from .flux import (FP8_TOL, ExportError, FORMAT_VERSION, _check_close, _load_state_dict_in, _log, _merge,
                   _read_json, _tol, _transformer_weight_files, _validate_limits, copy_tokenizers, export_clip,
                   make_device_agnostic, open_export, require_fp8_dtype, write_manifest)
from .flux_transformer import fuse_diffusers_state_dict, quantize_fp8_state_dict
from .hunyuan_video_transformer import HunyuanVideoTransformer
from .hunyuan_video_vae import HunyuanVideoVaeDecode, tile_config

# HunyuanVideoPipeline's defaults (diffusers 0.34)
MAX_SEQUENCE_LENGTH = 256
HIDDEN_STATE_SKIP = 2  # hidden_states[-(2 + 1)]
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 6.0


def build_transformer(tdir: str, dtype: torch.dtype, fp8: bool = False) -> HunyuanVideoTransformer:
    """ditserve's HunyuanVideoTransformer holding the checkpoint's weights in dtype; with fp8, the blocks' GEMM
    weights in float8 e4m3 with per-output-feature scales (FLUX's FP8 layers)."""
    cfg = _read_json(os.path.join(tdir, "config.json"))
    try:
        with torch.device("meta"):
            model = HunyuanVideoTransformer.from_diffusers_config(cfg, fp8=fp8)
    except ValueError as e:
        raise ExportError(f"{tdir}/config.json: {e}") from e
    sd = fuse_diffusers_state_dict(_load_state_dict_in(_transformer_weight_files(tdir), dtype))
    if fp8:
        sd = quantize_fp8_state_dict(model, sd)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except (KeyError, RuntimeError) as e:
        raise ExportError(f"transformer weights in {tdir} do not match HunyuanVideoTransformer3DModel: {e}") from e
    del sd
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            raise ExportError(f"transformer parameter {name} was not loaded")
    return model.eval().requires_grad_(False)


def _verify_transformer(src_dir: str, scripted, dtype: torch.dtype, tol: Optional[float] = None) -> float:
    """The scripted model's forward against diffusers' on a small random input with a padded text mask (the
    full-size checkpoint is only checked when it is small enough to load twice: tiny test models)."""
    from diffusers import HunyuanVideoTransformer3DModel

    ref = HunyuanVideoTransformer3DModel.from_pretrained(os.path.join(src_dir, "transformer"),
                                                         torch_dtype=dtype).eval()
    x, txt, mask, pooled, t, guid = sample_inputs(ref.config)
    x, txt, pooled, guid = x.to(dtype), txt.to(dtype), pooled.to(dtype), guid.to(dtype)
    with torch.no_grad():
        want = ref(x, t, txt, mask, pooled, guid, return_dict=False)[0]
        got = forward_pieces(scripted, ref.config, x, txt, mask, pooled, t, guid)
    del ref
    if tol is None:
        tol = 1e-4 if dtype == torch.float32 else 5e-2
    return _check_close("transformer", got, want, tol)


def sample_inputs(cfg, seed: int = 0):
    """A small float32 input for one evaluation: latents [1, C, 3, 2p, 3p], a 7-token prompt whose last 2 tokens are
    padding (its mask), pooled CLIP, the timestep and the embedded guidance (6 * 1000)."""
    g = torch.Generator().manual_seed(seed)
    c, p = cfg.in_channels, cfg.patch_size
    x = torch.randn(1, c, 3, 2 * p, 3 * p, generator=g)
    txt = torch.randn(1, 7, cfg.text_embed_dim, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    pooled = torch.randn(1, cfg.pooled_projection_dim, generator=g)
    return x, txt, mask, pooled, torch.tensor([733.0]), torch.tensor([6000.0])


def forward_pieces(scripted, cfg, x, txt, mask, pooled, t, guid) -> torch.Tensor:
    """One unsharded evaluation through the exported methods in the Denoiser's order (conditioning, embed_text,
    embed_image, double/single blocks with the [text, video] RoPE table and key mask, head), unpatchified to
    diffusers' output layout [B, C, F, H, W]."""
    p = cfg.patch_size
    f, h, w, n = x.shape[2], x.shape[3] // p, x.shape[4] // p, txt.shape[1]
    cos, sin = hunyuan_rope(f, h, w, list(cfg.rope_axes_dim), float(cfg.rope_theta))
    cos = torch.cat([torch.ones(n, cos.shape[1]), cos])  # the text rows unrotated
    sin = torch.cat([torch.zeros(n, sin.shape[1]), sin])
    mod = scripted.conditioning(pooled, t[None], guid)[0]
    emb = scripted.embed_text(txt, mask, t[None])[0]
    key_mask = torch.cat([mask.bool(), torch.ones(x.shape[0], f * h * w, dtype=torch.bool)], dim=1)
    img, tx = scripted.double_blocks(0, cfg.num_layers, scripted.embed_image(x), emb, mod, cos, sin, key_mask)
    img, tx = scripted.single_blocks(0, cfg.num_single_layers, img, tx, mod, cos, sin, key_mask)
    return unpatchify(scripted.head(img, mod), f, h, w, p, cfg.out_channels)


def hunyuan_rope(f: int, h: int, w: int, axes, theta: float):
    """HunyuanVideoRotaryPosEmbed for a (f, h, w) token grid: float32 frequencies (the C++ adapter's
    runtime::RotaryEmbedding with freqs_dtype float32)."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    grid = torch.stack(torch.meshgrid(torch.arange(f, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                                      torch.arange(w, dtype=torch.float32), indexing="ij"), dim=0)
    freqs = [get_1d_rotary_pos_embed(axes[i], grid[i].reshape(-1), theta, use_real=True) for i in range(3)]
    return torch.cat([fr[0] for fr in freqs], dim=1), torch.cat([fr[1] for fr in freqs], dim=1)


def unpatchify(tokens: torch.Tensor, f: int, h: int, w: int, p: int, c: int) -> torch.Tensor:
    """[B, f*h*w, c*p*p] (p_t = 1) -> [B, c, f, h*p, w*p], as the diffusers model's output reshape."""
    b = tokens.shape[0]
    return tokens.reshape(b, f, h, w, c, 1, p, p).permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(
        4, 5).flatten(2, 3)


def export_transformer(src_dir: str, out_path: str, dtype: torch.dtype, verify: bool, fp8: bool = False) -> Dict:
    tdir = os.path.join(src_dir, "transformer")
    model = build_transformer(tdir, dtype, fp8)
    scripted = torch.jit.script(model)
    del model
    gc.collect()
    cfg = _read_json(os.path.join(tdir, "config.json"))
    # the reference doubles the memory: verify small checkpoints only (the full size is the tiny one's code)
    if verify and sum(t.numel() for t in scripted.parameters()) < 200_000_000:
        err = _verify_transformer(src_dir, scripted, dtype, FP8_TOL if fp8 else None)
        _log(f"transformer verified: rel err {err:.2g}")
    scripted.save(out_path)
    del scripted
    gc.collect()
    return cfg


class _LlamaHidden(nn.Module):
    """LlamaModel -> hidden_states[-(skip + 1)] (HunyuanVideoPipeline._get_llama_prompt_embeds)."""

    def __init__(self, model: nn.Module, skip: int):
        super().__init__()
        self.model = model
        self.skip = skip

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.hidden_states[-(self.skip + 1)]


class _TraceableMasks:
    """transformers >= 4.53 builds attention masks with torch.vmap, which torch.jit.trace cannot record; while
    tracing, its equivalent non-vmap builder (the one it uses on torch < 2.6) stands in."""

    def __enter__(self):
        from transformers import masking_utils as mu
        self._saved = (mu.sdpa_mask, mu.ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["sdpa"])
        mu.sdpa_mask = mu.sdpa_mask_older_torch
        mu.ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["sdpa"] = mu.sdpa_mask_older_torch
        return self

    def __exit__(self, *exc):
        from transformers import masking_utils as mu
        mu.sdpa_mask, mu.ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["sdpa"] = self._saved
        return False


def export_llama(src_dir: str, out_path: str, dtype: torch.dtype, length: int, verify: bool) -> Dict:
    import warnings
    from transformers import LlamaModel

    model = LlamaModel.from_pretrained(os.path.join(src_dir, "text_encoder"), dtype=dtype).eval()
    vocab = int(model.config.vocab_size)
    g = torch.Generator().manual_seed(0)

    def example(valid: int):
        ids = torch.randint(0, min(vocab, 1000), (1, length), generator=g)
        mask = torch.zeros(1, length, dtype=torch.long)
        mask[0, :valid] = 1
        return ids, mask

    wrapper = _LlamaHidden(model, HIDDEN_STATE_SKIP).eval()
    # traced with right padding, so the padded-mask path (not a "no mask needed" shortcut) is what is recorded
    ids, mask = example(length // 3)
    with torch.no_grad(), warnings.catch_warnings(), _TraceableMasks():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (ids, mask), check_trace=False, strict=False)
    make_device_agnostic(traced)
    if verify:
        for valid in (length // 2 + 1, length):
            ids2, mask2 = example(valid)
            with torch.no_grad():
                _check_close(f"text_encoder[{valid} valid]", traced(ids2, mask2), wrapper(ids2, mask2), _tol(dtype))
    traced.save(out_path)
    info = {"hidden_size": int(model.config.hidden_size), "hidden_state_skip": HIDDEN_STATE_SKIP}
    del traced, wrapper, model
    gc.collect()
    return info


def export_vae(src_dir: str, out_path: str, dtype: torch.dtype, verify: bool, tiles: Optional[Dict] = None) -> Dict:
    """tiles: tiling sizes other than diffusers' defaults (enable_tiling's arguments, pixels)."""
    from diffusers import AutoencoderKLHunyuanVideo

    vae = AutoencoderKLHunyuanVideo.from_pretrained(os.path.join(src_dir, "vae"), torch_dtype=dtype).eval()
    if tiles:
        vae.enable_tiling(**tiles)
    try:
        m = HunyuanVideoVaeDecode.load_diffusers(vae)
    except (ValueError, RuntimeError) as e:
        raise ExportError(f"vae: {e}") from e
    scripted = torch.jit.script(m)
    c = int(vae.config.latent_channels)
    if verify:
        g = torch.Generator().manual_seed(0)
        vae.use_framewise_decoding = False
        for shape in ((1, c, 1, 3, 4), (1, c, 3, 4, 2)):
            z = torch.randn(*shape, generator=g).to(dtype)
            with torch.no_grad():
                _check_close(f"vae_decoder{list(shape)}", scripted(z), vae.decode(z, return_dict=False)[0],
                             _tol(dtype))
    scripted.save(out_path)
    tiles, spatial, temporal = tile_config(vae)
    info = {"latent_channels": c, "scale_factor": spatial, "temporal_scale_factor": temporal,
            "scaling_factor": float(vae.config.scaling_factor), "tiling": tiles,
            "parallel": "rows"}  # the engine may split a tile's decode by latent rows over a group's ranks
    del scripted, m, vae
    gc.collect()
    return info


def crop_start_of(src_dir: str, template: str) -> int:
    """diffusers' crop_start for a template without one: the template's token count minus 2 (its "{}" and the
    closing <|eot_id|>); HunyuanVideoPipeline's default template states 95, which this gives with the real
    Llama-3 tokenizer (tests/python: bpe_tokenizer_reference)."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(src_dir, "tokenizer"))
    return len(tok(template).input_ids) - 2


def default_limits(spatial: int) -> Dict:
    m = 2 * spatial  # the transformer's 2x2 patches
    return {
        "width": {"min": 128, "max": 1280, "multiple_of": m, "default": 960},
        "height": {"min": 128, "max": 1280, "multiple_of": m, "default": 544},
        "num_frames": {"min": 1, "max": 129, "multiple_of": 4, "offset": 1, "default": 61},
        "num_inference_steps": {"min": 1, "max": 100, "default": DEFAULT_STEPS},
        "default_guidance_scale": DEFAULT_GUIDANCE,
        "max_prompt_chars": 4096,
        "default_fps": 24,
    }


def export_hunyuan_video(src_dir: str, out_dir: str, dtype: str = "float32", name: Optional[str] = None,
                         limits: Optional[Dict] = None, verify: bool = True, vae_tiling: bool = True,
                         vae_tiles: Optional[Dict] = None, **unused) -> Dict:
    """Write the ditserve model directory for the diffusers HunyuanVideo pipeline at src_dir; returns model.json.
    vae_tiling: decode with diffusers' spatial tiling (enable_tiling()) when a frame exceeds a tile;
    vae_tiles: tile sizes other than diffusers' defaults (enable_tiling's keyword arguments)."""
    fp8 = bool(unused.pop("fp8", False))
    require_fp8_dtype(fp8, dtype)
    tdtype, src_dir, tcfg = open_export(
        src_dir, out_dir, dtype,
        ("transformer/config.json", "vae/config.json", "text_encoder/config.json", "text_encoder_2/config.json",
         "tokenizer/tokenizer.json", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt",
         "scheduler/scheduler_config.json"), "HunyuanVideoTransformer3DModel", "HunyuanVideoPipeline")
    name = name or os.path.basename(src_dir.rstrip("/"))

    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
    template = DEFAULT_PROMPT_TEMPLATE["template"]
    crop_start = crop_start_of(src_dir, template)
    length = MAX_SEQUENCE_LENGTH + crop_start

    t0 = time.time()
    _log(f"{name}: transformer ({dtype}{', fp8 e4m3 block weights' if fp8 else ''})")
    tcfg = export_transformer(src_dir, os.path.join(out_dir, "transformer.pt"), tdtype, verify, fp8)
    _log(f"text_encoder (Llama, L={length})  [{time.time() - t0:.1f}s]")
    llama = export_llama(src_dir, os.path.join(out_dir, "text_encoder.pt"), tdtype, length, verify)
    _log(f"text_encoder_2 (CLIP)  [{time.time() - t0:.1f}s]")
    clip = export_clip(src_dir, os.path.join(out_dir, "text_encoder_2.pt"), tdtype, verify,
                       encoder="text_encoder_2", tokenizer="tokenizer_2")
    _log(f"vae decoder  [{time.time() - t0:.1f}s]")
    vae = export_vae(src_dir, os.path.join(out_dir, "vae_decoder.pt"), tdtype, verify, vae_tiles)
    vae["tiling"]["enabled"] = bool(vae_tiling)

    copy_tokenizers(src_dir, out_dir)

    lim = _merge(default_limits(vae["scale_factor"]), limits)
    _validate_limits(lim)
    sched = _read_json(os.path.join(src_dir, "scheduler", "scheduler_config.json"))
    manifest = {
        "format_version": FORMAT_VERSION,
        "family": "hunyuan_video",
        "name": name,
        "output": "video",
        "dtype": dtype,
        "transformer": {
            "file": "transformer.pt",
            "in_channels": int(tcfg.get("in_channels", 16)),
            "out_channels": int(tcfg.get("out_channels") or tcfg.get("in_channels", 16)),
            "num_layers": int(tcfg.get("num_layers", 20)),
            "num_single_layers": int(tcfg.get("num_single_layers", 40)),
            "num_refiner_layers": int(tcfg.get("num_refiner_layers", 2)),
            "num_attention_heads": int(tcfg.get("num_attention_heads", 24)),
            "attention_head_dim": int(tcfg.get("attention_head_dim", 128)),
            "patch_size": int(tcfg.get("patch_size", 2)),
            "patch_size_t": int(tcfg.get("patch_size_t", 1)),
            "text_embed_dim": int(tcfg.get("text_embed_dim", 4096)),
            "pooled_projection_dim": int(tcfg.get("pooled_projection_dim", 768)),
            "rope_axes_dim": [int(a) for a in tcfg.get("rope_axes_dim", (16, 56, 56))],
            "rope_theta": float(tcfg.get("rope_theta", 256.0)),
            "guidance_embeds": bool(tcfg.get("guidance_embeds", True)),
            "weights": "fp8_e4m3" if fp8 else dtype,
        },
        "text_encoder": {"file": "text_encoder.pt", "template": template, "crop_start": crop_start,
                         "max_sequence_length": MAX_SEQUENCE_LENGTH, **llama},
        "tokenizer": {"dir": "tokenizer"},
        "text_encoder_2": {"file": "text_encoder_2.pt", "max_length": clip["max_length"],
                           "hidden_size": clip["hidden_size"]},
        "tokenizer_2": {"vocab": "tokenizer_2/vocab.json", "merges": "tokenizer_2/merges.txt",
                        "bos_token": clip["bos_token"], "eos_token": clip["eos_token"],
                        "pad_token": clip["pad_token"], "model_max_length": clip["max_length"]},
        "vae": {"file": "vae_decoder.pt", **vae},
        "scheduler": sched,
        "limits": lim,
    }
    write_manifest(out_dir, manifest)
    _log(f"done: {out_dir}  [{time.time() - t0:.1f}s]")
    return manifest
