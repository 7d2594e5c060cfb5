"""Export a diffusers FLUX checkpoint directory into a ditserve model directory (docs/model_format.md).

Components are loaded, exported and freed one at a time, each directly in the target dtype, so the peak
memory is about one component (the 12B transformer: ~24 GB in bfloat16) plus one safetensors shard.
"""
import gc
import glob
import json
import os
import shutil
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

from . import ops as _ops  # noqa: F401  (torch.ops.ditserve.* must exist before scripting/tracing)
from .flux_transformer import FluxTransformer, fuse_diffusers_state_dict, quantize_fp8_state_dict
from .vae import ParallelDecodeError, ParallelVaeDecode

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEFAULT_T5_MAX_LENGTH = {"dev": 512, "schnell": 256}
FORMAT_VERSION = 1


class ExportError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"[export] {msg}", flush=True)


def _read_json(path: str) -> Dict:
    if not os.path.isfile(path):
        raise ExportError(f"missing {path}")
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def _require(path: str) -> str:
    if not os.path.exists(path):
        raise ExportError(f"missing {path} (expected a diffusers FLUX pipeline directory, "
                          f"as written by FluxPipeline.save_pretrained)")
    return path


# ----------------------------------------------------------------------------------------------
# transformer
# ----------------------------------------------------------------------------------------------
def _transformer_weight_files(tdir: str) -> List[str]:
    index = os.path.join(tdir, "diffusion_pytorch_model.safetensors.index.json")
    if os.path.isfile(index):
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        return [os.path.join(tdir, s) for s in shards]
    single = os.path.join(tdir, "diffusion_pytorch_model.safetensors")
    if os.path.isfile(single):
        return [single]
    bins = sorted(glob.glob(os.path.join(tdir, "diffusion_pytorch_model*.bin")))
    if bins:
        return bins
    raise ExportError(f"no transformer weights (diffusion_pytorch_model*.safetensors / .bin) in {tdir}")


def _load_state_dict_in(files: List[str], dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    """Read shard by shard, casting to dtype as we go (peak: result + one shard)."""
    from safetensors.torch import load_file

    sd: Dict[str, torch.Tensor] = {}
    for f in files:
        part = load_file(f) if f.endswith(".safetensors") else torch.load(f, map_location="cpu",
                                                                          mmap=True, weights_only=True)
        for k in list(part.keys()):
            v = part.pop(k)
            sd[k] = v.to(dtype) if v.is_floating_point() else v
        del part
    return sd


def build_flux_transformer(tdir: str, dtype: torch.dtype, fp8: bool = False) -> FluxTransformer:
    """ditserve FluxTransformer holding the checkpoint's weights in dtype (one copy, no fp32 detour); with fp8,
    the block GEMMs' weights in e4m3 (quantised from dtype, per output feature)."""
    cfg = _read_json(os.path.join(tdir, "config.json"))
    with torch.device("meta"):
        model = FluxTransformer.from_diffusers_config(cfg, fp8=fp8)
    sd = _load_state_dict_in(_transformer_weight_files(tdir), dtype)
    try:
        sd = fuse_diffusers_state_dict(sd)
        if fp8:
            sd = quantize_fp8_state_dict(model, sd)
        model.load_state_dict(sd, strict=True, assign=True)
    except (KeyError, RuntimeError) as e:
        raise ExportError(f"transformer weights in {tdir} do not match FluxTransformer2DModel: {e}") from e
    del sd
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            raise ExportError(f"transformer parameter {name} was not loaded")
    return model.eval().requires_grad_(False)


def export_transformer(tdir: str, out_path: str, dtype: torch.dtype, fp8: bool = False) -> Dict:
    model = build_flux_transformer(tdir, dtype, fp8)
    scripted = torch.jit.script(model)
    scripted.save(out_path)
    cfg = _read_json(os.path.join(tdir, "config.json"))
    del scripted, model
    gc.collect()
    return cfg


# ----------------------------------------------------------------------------------------------
# traced components
# ----------------------------------------------------------------------------------------------
class _ClipPooled(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, output_hidden_states=False).pooler_output


class _T5Hidden(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, output_hidden_states=False).last_hidden_state


class _VaeDecode(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]


def _all_nodes(block):
    for node in list(block.nodes()):
        for sub in node.blocks():
            yield from _all_nodes(sub)
        yield node


def make_device_agnostic(traced: torch.jit.ScriptModule, g=None) -> int:
    """Tracing on CPU bakes ``device="cpu"`` constants into the graph (HF mask / position code), which
    would break the module after ``.to(cuda)``.  Inline forward (or the traced method whose graph is `g`) and
    replace every Device constant by ``prim::device(first input)``.  Returns the number of constants replaced."""
    g = traced.graph if g is None else g
    torch._C._jit_pass_inline(g)
    inputs = list(g.inputs())
    if len(inputs) < 2:
        raise ExportError("traced module has no tensor input")
    first = next(iter(g.nodes()))
    dev = None
    n = 0
    for node in list(_all_nodes(g)):
        if node.kind() == "prim::Constant" and node.output().type().kind() == "DeviceObjType":
            if dev is None:
                dev = g.create("prim::device", [inputs[1]])
                dev.output().setType(torch._C.DeviceObjType.get())
                dev.insertBefore(first)
            node.output().replaceAllUsesWith(dev.output())
            node.destroy()
            n += 1
    return n


def _trace(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    import warnings
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(module, (example,), check_trace=False, strict=False)
    make_device_agnostic(traced)
    return traced


def _check_close(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> float:
    if got.shape != want.shape:
        raise ExportError(f"{name}: traced output shape {tuple(got.shape)} != eager {tuple(want.shape)}")
    err = ((got.float() - want.float()).abs().max() / want.float().abs().max().clamp_min(1e-12)).item()
    if not err <= tol:
        raise ExportError(f"{name}: traced module diverges from eager (rel err {err:.3g} > {tol:.1g})")
    return err


def _tol(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 2e-2


# an fp8 export vs diffusers' bf16 transformer (max abs error / max abs): e4m3 weights and per-row activations
FP8_TOL = 0.15


def require_fp8_dtype(fp8: bool, dtype: Optional[str]) -> None:
    """An fp8 export's activations (and its non-GEMM weights) are bfloat16: refuse any other dtype."""
    if fp8 and dtype != "bfloat16":
        raise ExportError(f"fp8 weights need dtype bfloat16 (the activations' type), got {dtype!r}")


def export_clip(src: str, out_path: str, dtype: torch.dtype, verify: bool, encoder: str = "text_encoder",
                tokenizer: str = "tokenizer") -> Dict:
    """CLIP-L's pooled output from src/<encoder> (tokenised by src/<tokenizer>)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(os.path.join(src, tokenizer))
    model = CLIPTextModel.from_pretrained(os.path.join(src, encoder), dtype=dtype).eval()
    max_len = int(tok.model_max_length)
    ids = tok(["a photo of a cat"], padding="max_length", max_length=max_len, truncation=True,
              return_tensors="pt").input_ids
    wrapper = _ClipPooled(model).eval()
    traced = _trace(wrapper, ids)
    if verify:
        ids2 = tok(["two dogs playing in the snow, watercolor", ""], padding="max_length", max_length=max_len,
                   truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            _check_close("text_encoder", traced(ids2), wrapper(ids2), _tol(dtype))
    traced.save(out_path)
    info = {"max_length": max_len, "hidden_size": int(model.config.hidden_size),
            "bos_token": str(tok.bos_token), "eos_token": str(tok.eos_token), "pad_token": str(tok.pad_token)}
    del traced, wrapper, model
    gc.collect()
    return info


def export_t5(src: str, out_path: str, dtype: torch.dtype, max_length: int, verify: bool,
              subfolder: str = "text_encoder_2") -> Dict:
    from transformers import T5EncoderModel

    model = T5EncoderModel.from_pretrained(os.path.join(src, subfolder), dtype=dtype).eval()
    vocab = int(model.config.vocab_size)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, min(vocab, 1000), (1, max_length), generator=g)
    ids[0, max_length // 2] = 1
    ids[0, max_length // 2 + 1:] = 0
    wrapper = _T5Hidden(model).eval()
    traced = _trace(wrapper, ids)
    if verify:
        ids2 = torch.randint(3, min(vocab, 1000), (1, max_length), generator=g)
        with torch.no_grad():
            _check_close(subfolder, traced(ids2), wrapper(ids2), _tol(dtype))
    traced.save(out_path)
    info = {"max_sequence_length": int(max_length), "d_model": int(model.config.d_model)}
    del traced, wrapper, model
    gc.collect()
    return info


def export_vae_decoder(src: str, out_path: str, dtype: torch.dtype, verify: bool) -> Dict:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(os.path.join(src, "vae"), torch_dtype=dtype).eval()
    c = int(vae.config.latent_channels)
    g = torch.Generator().manual_seed(0)
    wrapper = _VaeDecode(vae).eval()
    # the traced decoder calls ditserve's split-capable ops (vae.py): the engine may decode it by rows
    try:
        split = ParallelVaeDecode(vae).eval()
    except ParallelDecodeError as e:
        raise ExportError(f"vae decoder cannot be exported for row-parallel decode: {e}") from e
    # trace at a small non-square size; verify at a different size (the graph must not bake shapes in)
    traced = _trace(split, torch.randn(1, c, 12, 8, generator=g).to(dtype))
    if verify:
        for shape in ((1, c, 8, 16), (2, c, 10, 6)):
            z = torch.randn(*shape, generator=g).to(dtype)
            with torch.no_grad():
                _check_close(f"vae_decoder{list(shape)}", traced(z), wrapper(z), _tol(dtype))
    traced.save(out_path)
    cfg = vae.config
    info = {"latent_channels": c, "scale_factor": 2 ** (len(cfg.block_out_channels) - 1),
            "scaling_factor": float(cfg.scaling_factor),
            "shift_factor": float(cfg.shift_factor) if cfg.shift_factor is not None else 0.0,
            "parallel": "rows"}
    del traced, split, wrapper, vae
    gc.collect()
    return info


# ----------------------------------------------------------------------------------------------
# model.json helpers
# ----------------------------------------------------------------------------------------------
def default_limits(variant: str, vae_scale_factor: int) -> Dict:
    m = 2 * vae_scale_factor
    return {
        "width": {"min": 256, "max": 2048, "multiple_of": m, "default": 1024},
        "height": {"min": 256, "max": 2048, "multiple_of": m, "default": 1024},
        "num_inference_steps": {"min": 1, "max": 100, "default": 28 if variant == "dev" else 4},
        "default_guidance_scale": 3.5,
        "max_prompt_chars": 4096,
    }


def _merge(base: Dict, over: Optional[Dict]) -> Dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate_limits(limits: Dict) -> None:
    for key in [k for k in ("width", "height", "num_frames", "num_inference_steps") if k in limits]:
        r = limits[key]
        if not (r["min"] <= r["default"] <= r["max"]):
            raise ExportError(f"limits.{key}: need min <= default <= max, got {r}")
        if "multiple_of" in r:
            for k in ("min", "max", "default"):
                if (r[k] - r.get("offset", 0)) % r["multiple_of"]:
                    raise ExportError(f"limits.{key}.{k}={r[k]} is not {r.get('offset', 0)} + a multiple of "
                                      f"{r['multiple_of']}")


def write_manifest(out_dir: str, manifest: Dict) -> None:
    """model.json, written last and atomically: its presence marks a finished export."""
    with open(os.path.join(out_dir, "model.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(out_dir, "model.json.tmp"), os.path.join(out_dir, "model.json"))


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------
def open_export(src_dir: str, out_dir: str, dtype: str, required, transformer_class: str, pipeline: str):
    """The checks every family's exporter starts with: dtype known, src_dir a diffusers `pipeline` directory with
    the `required` files and a transformer of `transformer_class`; out_dir made and any stale model.json (it marks
    a finished export) removed. Returns (torch dtype, absolute src_dir, transformer config)."""
    if dtype not in DTYPES:
        raise ExportError(f"unsupported dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    src_dir = os.path.abspath(src_dir)
    if not os.path.isdir(src_dir):
        raise ExportError(f"source directory {src_dir} does not exist")
    for sub in required:
        if not os.path.exists(os.path.join(src_dir, sub)):
            raise ExportError(f"missing {os.path.join(src_dir, sub)} (expected a diffusers {pipeline} directory, as "
                              f"written by {pipeline}.save_pretrained)")
    tcfg = _read_json(os.path.join(src_dir, "transformer/config.json"))
    if tcfg.get("_class_name", transformer_class) != transformer_class:
        raise ExportError(f"transformer is {tcfg.get('_class_name')}, expected {transformer_class}")
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(os.path.join(out_dir, "model.json")):
        os.remove(os.path.join(out_dir, "model.json"))
    return DTYPES[dtype], src_dir, tcfg


def copy_tokenizers(src_dir: str, out_dir: str, subs=("tokenizer", "tokenizer_2")) -> None:
    for sub in subs:
        dst = os.path.join(out_dir, sub)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        shutil.copytree(os.path.join(src_dir, sub), dst)


def write_manifest(out_dir: str, manifest: Dict) -> None:
    """model.json, atomically (written last: its presence marks a finished export)."""
    with open(os.path.join(out_dir, "model.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(out_dir, "model.json.tmp"), os.path.join(out_dir, "model.json"))


def export_flux(src_dir: str, out_dir: str, dtype: str = "float32", name: Optional[str] = None,
                t5_max_length: Optional[int] = None, limits: Optional[Dict] = None,
                verify: bool = True, fp8: bool = False) -> Dict:
    """Write the ditserve model directory for the diffusers FLUX pipeline at src_dir.  Returns model.json.

    t5_max_length: T5 sequence length (default 512 for dev, 256 for schnell).
    limits: partial override of model.json "limits" (merged into the real-size defaults).
    verify: compare each traced component with eager PyTorch at inputs other than the tracing ones.
    fp8: the transformer blocks' GEMM weights in float8 e4m3 (opt-in precision; needs dtype bfloat16)."""
    require_fp8_dtype(fp8, dtype)
    tdtype, src_dir, tcfg = open_export(
        src_dir, out_dir, dtype,
        ("transformer/config.json", "vae/config.json", "text_encoder/config.json", "text_encoder_2/config.json",
         "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer_2/spiece.model",
         "scheduler/scheduler_config.json"), "FluxTransformer2DModel", "FluxPipeline")
    variant = "dev" if tcfg.get("guidance_embeds", False) else "schnell"
    t5_len = int(t5_max_length or DEFAULT_T5_MAX_LENGTH[variant])
    if t5_len <= 0:
        raise ExportError(f"t5 max length must be positive, got {t5_len}")
    name = name or os.path.basename(src_dir.rstrip("/"))

    t0 = time.time()
    _log(f"{name}: transformer ({variant}, {dtype}{', fp8 e4m3 block weights' if fp8 else ''})")
    tcfg = export_transformer(os.path.join(src_dir, "transformer"), os.path.join(out_dir, "transformer.pt"), tdtype,
                              fp8)
    _log(f"text_encoder (CLIP)  [{time.time() - t0:.1f}s]")
    clip = export_clip(src_dir, os.path.join(out_dir, "text_encoder.pt"), tdtype, verify)
    _log(f"text_encoder_2 (T5, L={t5_len})  [{time.time() - t0:.1f}s]")
    t5 = export_t5(src_dir, os.path.join(out_dir, "text_encoder_2.pt"), tdtype, t5_len, verify)
    _log(f"vae decoder  [{time.time() - t0:.1f}s]")
    vae = export_vae_decoder(src_dir, os.path.join(out_dir, "vae_decoder.pt"), tdtype, verify)

    copy_tokenizers(src_dir, out_dir)

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(src_dir, "tokenizer_2", "spiece.model"))

    lim = _merge(default_limits(variant, vae["scale_factor"]), limits)
    _validate_limits(lim)
    in_ch = int(tcfg.get("in_channels", 64))
    manifest = {
        "format_version": FORMAT_VERSION,
        "family": "flux",
        "name": name,
        "variant": variant,
        "dtype": dtype,
        "transformer": {
            "file": "transformer.pt",
            "in_channels": in_ch,
            "out_channels": int(tcfg.get("out_channels") or in_ch),
            "num_layers": int(tcfg.get("num_layers", 19)),
            "num_single_layers": int(tcfg.get("num_single_layers", 38)),
            "num_attention_heads": int(tcfg.get("num_attention_heads", 24)),
            "attention_head_dim": int(tcfg.get("attention_head_dim", 128)),
            "joint_attention_dim": int(tcfg.get("joint_attention_dim", 4096)),
            "pooled_projection_dim": int(tcfg.get("pooled_projection_dim", 768)),
            "axes_dims_rope": [int(a) for a in tcfg.get("axes_dims_rope", (16, 56, 56))],
            "rope_theta": 10000,
            "guidance_embeds": bool(tcfg.get("guidance_embeds", False)),
            "weights": "fp8_e4m3" if fp8 else dtype,
        },
        "text_encoder": {"file": "text_encoder.pt", "max_length": clip["max_length"],
                         "hidden_size": clip["hidden_size"]},
        "text_encoder_2": {"file": "text_encoder_2.pt", "max_sequence_length": t5["max_sequence_length"],
                           "d_model": t5["d_model"]},
        "tokenizer": {"vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt",
                      "bos_token": clip["bos_token"], "eos_token": clip["eos_token"],
                      "pad_token": clip["pad_token"], "model_max_length": clip["max_length"]},
        "tokenizer_2": {"spiece": "tokenizer_2/spiece.model", "eos_token_id": int(sp.eos_id()),
                        "pad_token_id": int(sp.pad_id())},
        "vae": {"file": "vae_decoder.pt", **vae},
        "scheduler": _read_json(os.path.join(src_dir, "scheduler", "scheduler_config.json")),
        "limits": lim,
    }
    write_manifest(out_dir, manifest)
    _log(f"done: {out_dir}  [{time.time() - t0:.1f}s]")
    return manifest


EXPORTERS: Dict[str, Callable[..., Dict]] = {"flux": export_flux}
