"""ditserve's TorchScript-able FLUX transformer.

Numerically it follows diffusers 0.34 ``FluxTransformer2DModel``; its parameters are diffusers' with the
projections that read the same input stacked into one GEMM (``fuse_diffusers_state_dict`` maps a diffusers
state dict, see ``FUSED_PROJECTIONS``).  Differences, all deliberate (see docs/model_format.md):

* the rotary table (cos, sin) is an input, computed by the caller from the position ids
  (``flux_rope`` below is the Python reference of what the C++ adapter computes);
* attention is ``torch.ops.ditserve.attention(q, k, v, key_mask)`` so the engine can swap the kernel
  (plain SDPA, Ulysses, ring) without re-exporting;
* the memory-bound chains are ditserve ops (``rms_rope``: q/k RMSNorm + RoPE; ``layer_norm_modulate``:
  adaLN; ``linear_gelu``: GEMM + GELU epilogue; ``gated_residual``: x + gate * y) that the engine runs as
  single CUDA kernels; their references (ops.py) have the unfused roundings;
* opt-in FP8 weights (``fp8=True``): the block GEMMs become ``Fp8Linear`` (e4m3 weights with one scale per
  output feature, inputs quantised per row by the op); the MLPs' GELU then moves from the up projection's
  epilogue into the down projection's input quantisation. ``quantize_fp8_state_dict`` converts the weights;
* the model can be run in pieces: ``conditioning`` (every block's adaLN modulation for all steps of a request,
  in one batched GEMM per projection instead of a GEMV per step), ``embed_text`` (once per request),
  ``embed_image``, ``double_blocks(start, end, ...)``, ``single_blocks(start, end, ...)``, ``head``; ``step`` and
  ``forward`` chain them.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops as _ops  # noqa: F401  (registers torch.ops.ditserve.attention)


# ----------------------------------------------------------------------------------------------
# rotary embedding (Python reference; the C++ adapter reimplements it)
# ----------------------------------------------------------------------------------------------
def flux_rope(ids: torch.Tensor, axes_dims: Sequence[int], theta: float = 10000.0
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """ids [S, n_axes] -> (cos, sin), each float32 [S, sum(axes_dims)], pairs repeat-interleaved.

    Frequencies are computed in float64 from float32 positions, then rounded to float32, which is
    what diffusers' FluxPosEmbed does on CPU/CUDA."""
    pos = ids.to(torch.float32)
    coss: List[torch.Tensor] = []
    sins: List[torch.Tensor] = []
    for axis, dim in enumerate(axes_dims):
        if dim % 2 != 0:
            raise ValueError(f"rope axis dim must be even, got {dim}")
        exponents = torch.arange(0, dim, 2, dtype=torch.float64, device=ids.device) / dim
        inv_freq = 1.0 / (float(theta) ** exponents)                       # [dim/2]
        angles = pos[:, axis].to(torch.float64)[:, None] * inv_freq[None, :]  # [S, dim/2]
        coss.append(torch.repeat_interleave(angles.cos(), 2, dim=1).to(torch.float32))
        sins.append(torch.repeat_interleave(angles.sin(), 2, dim=1).to(torch.float32))
    return torch.cat(coss, dim=-1), torch.cat(sins, dim=-1)


# ----------------------------------------------------------------------------------------------
# small building blocks
# ----------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        y = x * torch.rsqrt(var + self.eps)
        if self.weight.dtype == torch.float16 or self.weight.dtype == torch.bfloat16:
            y = y.to(self.weight.dtype)
        return y * self.weight


def timestep_sinusoid(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """[B] -> float32 [B, dim], (cos, sin) order, no frequency shift (diffusers Timesteps(256, True, 0))."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class MLPEmbedder(nn.Module):
    """linear_1 -> SiLU -> linear_2 (diffusers TimestepEmbedding / PixArtAlphaTextProjection(silu))."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TimeTextEmbed(nn.Module):
    """schnell: temb = MLP(sinusoid(t)) + MLP(pooled); guidance is ignored."""

    def __init__(self, dim: int, pooled_dim: int):
        super().__init__()
        self.timestep_embedder = MLPEmbedder(256, dim)
        self.text_embedder = MLPEmbedder(pooled_dim, dim)

    def forward(self, timestep: torch.Tensor, guidance: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        t = self.timestep_embedder(timestep_sinusoid(timestep).to(pooled.dtype))
        return t + self.text_embedder(pooled)


class TimeGuidanceTextEmbed(nn.Module):
    """dev: temb = MLP(sinusoid(t)) + MLP(sinusoid(g)) + MLP(pooled)."""

    def __init__(self, dim: int, pooled_dim: int):
        super().__init__()
        self.timestep_embedder = MLPEmbedder(256, dim)
        self.guidance_embedder = MLPEmbedder(256, dim)
        self.text_embedder = MLPEmbedder(pooled_dim, dim)

    def forward(self, timestep: torch.Tensor, guidance: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        t = self.timestep_embedder(timestep_sinusoid(timestep).to(pooled.dtype))
        g = self.guidance_embedder(timestep_sinusoid(guidance).to(pooled.dtype))
        return (t + g) + self.text_embedder(pooled)


# Linear layers of the blocks. An MLP's up projection returns what its down projection expects: bf16
# applies the GELU in the up GEMM's epilogue (GeluLinear), FP8 leaves it to the down projection's input
# quantisation (Fp8Linear with gelu_input). Down projections take an optional second input: the
# single-stream blocks' proj_out([attention, mlp]) without materialising the concatenation.
class GeluLinear(nn.Linear):
    """gelu_tanh(linear(x)): one cuBLASLt GEMM with a bias + GELU epilogue in the engine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.ditserve.linear_gelu(x, self.weight, self.bias)


class SplitLinear(nn.Linear):
    """linear(cat([x, x2], -1)) as two GEMMs over the weight's column blocks, the second accumulating into the
    first's output: no concatenated copy of the (15360-wide) activations."""

    def forward(self, x: torch.Tensor, x2: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x2 is None:
            return F.linear(x, self.weight, self.bias)
        n = x.shape[-1]
        y = F.linear(x, self.weight[:, :n], self.bias)
        y.view(-1, y.shape[-1]).addmm_(x2.reshape(-1, x2.shape[-1]), self.weight[:, n:].t())
        return y


class Fp8Linear(nn.Module):
    """nn.Linear's parameters with the weight in float8_e4m3fn and ``weight_scale`` (fp32, one per output
    feature); ``torch.ops.ditserve.fp8_linear`` quantises the input per row. gelu_input: GELU(tanh) is applied
    to the last input part (the MLP's hidden activations) as it is quantised."""

    def __init__(self, in_features: int, out_features: int, gelu_input: bool = False):
        super().__init__()
        self.gelu_input = gelu_input
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=torch.float8_e4m3fn),
                                   requires_grad=False)
        self.weight_scale = nn.Parameter(torch.ones(out_features), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False)

    def forward(self, x: torch.Tensor, x2: Optional[torch.Tensor] = None) -> torch.Tensor:
        return torch.ops.ditserve.fp8_linear(x, self.weight, self.weight_scale, self.bias,
                                             self.gelu_input and x2 is None, x2, self.gelu_input)


def _linear(fp8: bool, in_features: int, out_features: int) -> nn.Module:
    return Fp8Linear(in_features, out_features) if fp8 else nn.Linear(in_features, out_features)


def _up_linear(fp8: bool, in_features: int, out_features: int) -> nn.Module:
    return Fp8Linear(in_features, out_features) if fp8 else GeluLinear(in_features, out_features)


def _down_linear(fp8: bool, in_features: int, out_features: int) -> nn.Module:
    return Fp8Linear(in_features, out_features, gelu_input=True) if fp8 else SplitLinear(in_features, out_features)


class GeluProj(nn.Module):
    def __init__(self, dim: int, hidden: int, fp8: bool = False):
        super().__init__()
        self.proj = _up_linear(fp8, dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class FeedForward(nn.Module):
    """net.0.proj (gelu-tanh) -> net.1 (dropout, no-op) -> net.2."""

    def __init__(self, dim: int, mult: int = 4, fp8: bool = False):
        super().__init__()
        self.net = nn.ModuleList([GeluProj(dim, dim * mult, fp8), nn.Dropout(0.0),
                                  _down_linear(fp8, dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


def _ln_modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """LN(x) * (1 + scale[:, None]) + shift[:, None], FLUX's eps (adaLN and norm_out)"""
    return torch.ops.ditserve.layer_norm_modulate(x, scale, shift, 1e-6)


def _gated(x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x + gate[:, None] * y"""
    return torch.ops.ditserve.gated_residual(x, gate, y)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, S, H*D] -> [B, H, S, D]"""
    b, s, hd = x.shape
    return x.view(b, s, heads, hd // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, S, D] -> [B, S, H*D]"""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)


# ----------------------------------------------------------------------------------------------
# attention modules (parameter names of diffusers' Attention)
# ----------------------------------------------------------------------------------------------
class JointAttention(nn.Module):
    """Double-stream attention. ``to_qkv`` / ``add_qkv_proj`` stack diffusers' to_q/to_k/to_v and
    add_q_proj/add_k_proj/add_v_proj (one GEMM per stream)."""

    def __init__(self, dim: int, heads: int, head_dim: int, fp8: bool = False):
        super().__init__()
        self.heads = heads
        self.inner = heads * head_dim
        self.fp8 = fp8
        inner = self.inner
        self.to_qkv = _linear(fp8, dim, 3 * inner)
        self.norm_q = RMSNorm(head_dim)
        self.norm_k = RMSNorm(head_dim)
        self.add_qkv_proj = _linear(fp8, dim, 3 * inner)
        self.norm_added_q = RMSNorm(head_dim)
        self.norm_added_k = RMSNorm(head_dim)
        self.to_out = nn.ModuleList([_linear(fp8, inner, dim)])
        self.to_add_out = _linear(fp8, inner, dim)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        n = self.inner
        s_txt = txt.shape[1]
        # text rows first, then image rows (diffusers' concatenation order)
        if self.fp8 or img.shape[0] != 1:
            i = self.to_qkv(img)
            t = self.add_qkv_proj(txt)
            v = _heads(torch.cat([t[:, :, 2 * n:], i[:, :, 2 * n:]], dim=1), self.heads)
        else:
            # One sample (the pipeline's case): both streams' q/k/v GEMMs write their rows of one buffer, so v is a
            # view of it instead of a concatenated copy (a strided cat cost 66 us a block at 1024^2)
            qkv = torch.empty([1, s_txt + img.shape[1], 3 * n], dtype=img.dtype, device=img.device)
            torch.addmm(self.add_qkv_proj.bias, txt[0], self.add_qkv_proj.weight.t(), out=qkv[0, :s_txt])
            torch.addmm(self.to_qkv.bias, img[0], self.to_qkv.weight.t(), out=qkv[0, s_txt:])
            t = qkv[:, :s_txt]
            i = qkv[:, s_txt:]
            v = _heads(qkv[:, :, 2 * n:], self.heads)
        q = torch.ops.ditserve.rms_rope(t[:, :, :n], self.norm_added_q.weight, cos, sin, self.norm_q.eps,
                                        i[:, :, :n], self.norm_q.weight)
        k = torch.ops.ditserve.rms_rope(t[:, :, n:2 * n], self.norm_added_k.weight, cos, sin, self.norm_k.eps,
                                        i[:, :, n:2 * n], self.norm_k.weight)
        o = torch.ops.ditserve.attention(q, k, v, key_mask)
        o = _merge_heads(o).to(q.dtype)
        txt_out = self.to_add_out(o[:, :s_txt])
        img_out = self.to_out[0](o[:, s_txt:])
        return img_out, txt_out


class SelfAttention(nn.Module):
    """The single-stream blocks' q/k/v projection (``to_qkv`` stacks diffusers' to_q/to_k/to_v) and q/k
    norms; the attention itself runs in the block."""

    def __init__(self, dim: int, heads: int, head_dim: int, fp8: bool = False):
        super().__init__()
        self.to_qkv = _linear(fp8, dim, 3 * heads * head_dim)
        self.norm_q = RMSNorm(head_dim)
        self.norm_k = RMSNorm(head_dim)


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------
# adaLN: ``linear`` maps silu(temb) to the block's modulation vectors. They depend on the step's conditioning
# alone, never on the tokens, so FluxTransformer.conditioning computes every block's for all steps of a request
# at once (one pass over these weights, about a quarter of the model, per request instead of per step); the blocks
# take their slice of that row (``mod``).
class AdaNormZero(nn.Module):
    """diffusers AdaLayerNormZero: holds ``linear``; the norm has no parameters."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, x: torch.Tensor, mod: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m = mod.chunk(6, dim=1)
        return _ln_modulate(x, m[1], m[0]), m[2], m[3], m[4], m[5]


class AdaNormZeroSingle(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        m = mod.chunk(3, dim=1)
        return _ln_modulate(x, m[1], m[0]), m[2]


class AdaNormOut(nn.Module):
    """diffusers AdaLayerNormContinuous(elementwise_affine=False): chunks are (scale, shift)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        m = mod.chunk(2, dim=1)
        return _ln_modulate(x, m[0], m[1])


class DoubleStreamBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, fp8: bool = False):
        super().__init__()
        self.norm1 = AdaNormZero(dim)
        self.norm1_context = AdaNormZero(dim)
        self.attn = JointAttention(dim, heads, head_dim, fp8)
        self.ff = FeedForward(dim, fp8=fp8)
        self.ff_context = FeedForward(dim, fp8=fp8)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor, key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """mod [B, 12 * dim]: norm1's modulation vectors, then norm1_context's."""
        half = mod.shape[1] // 2
        img_n, img_gate, img_shift2, img_scale2, img_gate2 = self.norm1(img, mod[:, :half])
        txt_n, txt_gate, txt_shift2, txt_scale2, txt_gate2 = self.norm1_context(txt, mod[:, half:])
        img_a, txt_a = self.attn(img_n, txt_n, cos, sin, key_mask)

        # gated residuals x + gate * y, no rounded product in between (addcmul's math, one kernel in the engine)
        img = _gated(img, img_gate, img_a)
        img = _gated(img, img_gate2, self.ff(_ln_modulate(img, img_scale2, img_shift2)))

        txt = _gated(txt, txt_gate, txt_a)
        txt = _gated(txt, txt_gate2, self.ff_context(_ln_modulate(txt, txt_scale2, txt_shift2)))
        if txt.dtype == torch.float16:
            txt = txt.clip(-65504, 65504)
        return img, txt


class SingleStreamBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: float = 4.0, fp8: bool = False):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.heads = heads
        self.inner = heads * head_dim
        self.norm = AdaNormZeroSingle(dim)
        self.proj_mlp = _up_linear(fp8, dim, hidden)
        self.proj_out = _down_linear(fp8, dim + hidden, dim)
        self.attn = SelfAttention(dim, heads, head_dim, fp8)

    def forward(self, x: torch.Tensor, mod: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """mod [B, 3 * dim]: norm's modulation vectors."""
        n = self.inner
        xn, gate = self.norm(x, mod)
        qkv = self.attn.to_qkv(xn)
        q = torch.ops.ditserve.rms_rope(qkv[:, :, :n], self.attn.norm_q.weight, cos, sin, self.attn.norm_q.eps)
        k = torch.ops.ditserve.rms_rope(qkv[:, :, n:2 * n], self.attn.norm_k.weight, cos, sin, self.attn.norm_k.eps)
        v = _heads(qkv[:, :, 2 * n:], self.heads)  # a strided view: attention reads it in place
        a = _merge_heads(torch.ops.ditserve.attention(q, k, v, key_mask)).to(q.dtype)
        # The MLP is a separate GEMM from q/k/v so that its GELU can ride with it (see GeluLinear / Fp8Linear);
        # proj_out reads [a, mlp] without a concatenated copy.
        y = self.proj_out(a, self.proj_mlp(xn))
        x = _gated(x, gate, y)
        if x.dtype == torch.float16:
            x = x.clip(-65504, 65504)
        return x


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------
# fused parameter -> the diffusers parameters whose output rows it stacks, in order, per block list
FUSED_PROJECTIONS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "transformer_blocks": {"attn.to_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                           "attn.add_qkv_proj": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")},
    "single_transformer_blocks": {"attn.to_qkv": ("attn.to_q", "attn.to_k", "attn.to_v")},
}


def fuse_diffusers_state_dict(sd: Dict[str, torch.Tensor],
                              table: Optional[Dict[str, Dict[str, Tuple[str, ...]]]] = None) -> Dict[str, torch.Tensor]:
    """diffusers state dict -> one with the projections of `table` (default: FluxTransformer2DModel's
    FUSED_PROJECTIONS) stacked (in place: sources are popped as they are stacked, so peak memory grows by one
    projection)."""
    for blocks, fusions in (FUSED_PROJECTIONS if table is None else table).items():
        indices = sorted({int(k.split(".")[1]) for k in sd if k.startswith(blocks + ".")})
        for i in indices:
            prefix = f"{blocks}.{i}."
            for fused, sources in fusions.items():
                for param in ("weight", "bias"):
                    names = [f"{prefix}{src}.{param}" for src in sources]
                    present = [n for n in names if n in sd]
                    if not present:
                        continue  # load_state_dict(strict=True) names the missing fused parameter
                    if len(present) != len(names):
                        missing = sorted(set(names) - set(present))
                        raise KeyError(f"{missing[0]} missing (stacked into {prefix}{fused}.{param})")
                    sd[f"{prefix}{fused}.{param}"] = torch.cat([sd.pop(n) for n in names], dim=0)
    return sd


def quantize_fp8_state_dict(model: nn.Module, sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """For every Fp8Linear of model, replace sd's "<name>.weight" (any float dtype) by its e4m3 quantisation
    and add "<name>.weight_scale" (in place; one layer's float32 copy at a time); a layer without a bias in sd
    (a bias=False GEMM) gets zeros, as Fp8Linear always adds one."""
    for name, mod in model.named_modules():
        if isinstance(mod, Fp8Linear):
            key = name + ".weight"
            if key not in sd:
                continue  # load_state_dict(strict=True) names it
            if name + ".bias" not in sd:
                sd[name + ".bias"] = sd[key].new_zeros(sd[key].shape[0])
            sd[key], sd[name + ".weight_scale"] = _ops.fp8_quantize_weight(sd[key])
    return sd


class FluxTransformer(nn.Module):
    def __init__(self, in_channels: int = 64, out_channels: Optional[int] = None, num_layers: int = 19,
                 num_single_layers: int = 38, attention_head_dim: int = 128, num_attention_heads: int = 24,
                 joint_attention_dim: int = 4096, pooled_projection_dim: int = 768,
                 guidance_embeds: bool = False, axes_dims_rope: Sequence[int] = (16, 56, 56),
                 patch_size: int = 1, fp8: bool = False):
        super().__init__()
        if patch_size != 1:
            raise ValueError("only patch_size=1 FLUX checkpoints are supported")
        if sum(axes_dims_rope) != attention_head_dim:
            raise ValueError(f"axes_dims_rope {list(axes_dims_rope)} must sum to attention_head_dim")
        dim = num_attention_heads * attention_head_dim
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.inner_dim = dim
        self.num_layers = num_layers
        self.num_single_layers = num_single_layers
        self.num_attention_heads = num_attention_heads
        self.attention_head_dim = attention_head_dim
        self.guidance_embeds = guidance_embeds

        if guidance_embeds:
            self.time_text_embed = TimeGuidanceTextEmbed(dim, pooled_projection_dim)
        else:
            self.time_text_embed = TimeTextEmbed(dim, pooled_projection_dim)
        self.context_embedder = nn.Linear(joint_attention_dim, dim)
        self.x_embedder = nn.Linear(in_channels, dim)
        self.transformer_blocks = nn.ModuleList(
            [DoubleStreamBlock(dim, num_attention_heads, attention_head_dim, fp8) for _ in range(num_layers)])
        self.single_transformer_blocks = nn.ModuleList(
            [SingleStreamBlock(dim, num_attention_heads, attention_head_dim, fp8=fp8)
             for _ in range(num_single_layers)])
        self.norm_out = AdaNormOut(dim)
        self.proj_out = nn.Linear(dim, self.out_channels)

    @classmethod
    def from_diffusers_config(cls, cfg: Dict, fp8: bool = False) -> "FluxTransformer":
        return cls(in_channels=cfg.get("in_channels", 64), out_channels=cfg.get("out_channels"),
                   num_layers=cfg.get("num_layers", 19), num_single_layers=cfg.get("num_single_layers", 38),
                   attention_head_dim=cfg.get("attention_head_dim", 128),
                   num_attention_heads=cfg.get("num_attention_heads", 24),
                   joint_attention_dim=cfg.get("joint_attention_dim", 4096),
                   pooled_projection_dim=cfg.get("pooled_projection_dim", 768),
                   guidance_embeds=bool(cfg.get("guidance_embeds", False)),
                   axes_dims_rope=tuple(cfg.get("axes_dims_rope", (16, 56, 56))),
                   patch_size=cfg.get("patch_size", 1), fp8=fp8)

    @torch.jit.export
    def conditioning(self, pooled_projections: torch.Tensor, timestep: torch.Tensor, guidance: torch.Tensor
                     ) -> torch.Tensor:
        """pooled [B, P], timestep [T, B], guidance [B] -> [T, B, mod_dim]: for each of T steps, every block's
        adaLN modulation vectors and the head's, concatenated in block order (12·dim per double block, 3·dim
        per single block, 2·dim for the head). One GEMM of T·B rows per projection: the pipeline computes a
        request's whole schedule before its first step."""
        steps = timestep.shape[0]
        batch = timestep.shape[1]
        dtype = self.proj_out.weight.dtype
        t = timestep.reshape(-1).to(dtype) * 1000              # step-major rows: (step 0, b 0), (step 0, b 1), ...
        g = guidance.to(dtype).repeat(steps) * 1000
        temb = self.time_text_embed(t, g, pooled_projections.repeat(steps, 1))
        return self.modulations(F.silu(temb), steps, batch)

    def modulations(self, s: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
        """silu(temb) rows [T·B, dim] (step-major) -> [T, B, mod_dim]: every block's adaLN linear, then the head's."""
        mods: List[torch.Tensor] = []
        for blk in self.transformer_blocks:
            mods.append(blk.norm1.linear(s))
            mods.append(blk.norm1_context.linear(s))
        for blk in self.single_transformer_blocks:
            mods.append(blk.norm.linear(s))
        mods.append(self.norm_out.linear(s))
        return torch.cat(mods, dim=1).view(steps, batch, -1)

    @torch.jit.export
    def embed_image(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.x_embedder(hidden_states)

    @torch.jit.export
    def embed_text(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """Per request, not per step: the text stream's input does not change between steps."""
        return self.context_embedder(encoder_hidden_states)

    @torch.jit.export
    def double_blocks(self, start: int, end: int, img: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor,
                      cos: torch.Tensor, sin: torch.Tensor, key_mask: Optional[torch.Tensor]
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """mod [B, mod_dim]: this step's row of conditioning()."""
        w = 12 * self.inner_dim
        for i, blk in enumerate(self.transformer_blocks):
            if i >= start and i < end:
                img, txt = blk(img, txt, mod[:, i * w:(i + 1) * w], cos, sin, key_mask)
        return img, txt

    @torch.jit.export
    def single_blocks(self, start: int, end: int, img: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor,
                      cos: torch.Tensor, sin: torch.Tensor, key_mask: Optional[torch.Tensor]
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        if start >= end or start >= self.num_single_layers:
            return img, txt
        t = txt.shape[1]
        x = torch.cat([txt, img], dim=1)
        base = 12 * self.inner_dim * self.num_layers
        w = 3 * self.inner_dim
        for i, blk in enumerate(self.single_transformer_blocks):
            if i >= start and i < end:
                x = blk(x, mod[:, base + i * w:base + (i + 1) * w], cos, sin, key_mask)
        return x[:, t:], x[:, :t]

    @torch.jit.export
    def head(self, img: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.norm_out(img, mod[:, mod.shape[1] - 2 * self.inner_dim:]))

    @torch.jit.export
    def step(self, hidden_states: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor, cos: torch.Tensor,
             sin: torch.Tensor) -> torch.Tensor:
        """One denoising step's evaluation as the pipeline runs it: txt from embed_text, mod a row of
        conditioning() (benchmarks time this; the pipeline calls the pieces)."""
        img = self.embed_image(hidden_states)
        img, txt = self.double_blocks(0, self.num_layers, img, txt, mod, cos, sin, None)
        img, txt = self.single_blocks(0, self.num_single_layers, img, txt, mod, cos, sin, None)
        return self.head(img, mod)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                pooled_projections: torch.Tensor, timestep: torch.Tensor, guidance: torch.Tensor,
                cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """diffusers' transformer call (timestep [B]), all of it: conditioning of one step included."""
        mod = self.conditioning(pooled_projections, timestep.unsqueeze(0), guidance)[0]
        return self.step(hidden_states, self.embed_text(encoder_hidden_states), mod, cos, sin)
