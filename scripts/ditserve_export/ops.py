"""Python-side definitions of the engine's custom operators (``torch.ops.ditserve.*``).

The C++ engine registers the same schemas (``TORCH_LIBRARY(ditserve, m)`` and fragments) when it loads a
model; this module provides reference implementations with single-rank semantics so that scripting,
tracing and the Python checks can run the exported modules.  Import it before ``torch.jit.script`` /
``torch.jit.trace`` / ``torch.jit.load`` of any exported module.

  attention          transformer attention (engine: SDPA, or Ulysses / ring under context parallelism)
  halo_conv2d        stride-1 conv2d (engine: exchanges halo rows when the decoder is split by rows)
  halo_conv3d        H/W padding (zeros or replicate) and optional causal T padding (time_pad frames in front), in
                     one copy, + conv3d of [B, C, T, H, W] video (engine: the same halo exchange along H; T is never
                     split)
  group_norm         F.group_norm (engine: statistics all-reduced over the row-split ranks)
  spatial_attention  SDPA over all spatial tokens (engine: keys/values all-gathered over the ranks)
  gather_rows        the whole tensor along its row axis `dim` (engine: every rank's rows all-gathered, in row
                     order; decoders whose attention needs every row's keys in order use it)
  rms_rope           per-head RMSNorm + RoPE of q/k into [B, H, S, D] (engine: one CUDA kernel for bf16)
  layer_norm_rope    per-head LayerNorm (affine) + RoPE on the rows after the text, into [B, H, S, D] (CogVideoX's
                     q/k; engine: one CUDA kernel for bf16)
  rms_rope_per_head  Mochi's q/k: per-head RMSNorm (one rounding) + per-head-angle RoPE of the video rows, then the
                     text rows unrotated, into [B, H, S, D] (engine: one CUDA kernel for bf16)
  rms_scale          Mochi's modulated RMSNorm rms(x) * scale (float32, rounded once) [+ residual] (engine: one
                     CUDA kernel for bf16)
  layer_norm_modulate  LN(x) * (1 + scale) + shift, adaLN (engine: one CUDA kernel for bf16)
  linear_gelu        gelu_tanh(linear(x)) (engine: one cuBLASLt GEMM with a bias + GELU epilogue on CUDA)
  gated_residual     x + gate[:, None] * y, the blocks' gated residuals (engine: one CUDA kernel for bf16)
  swiglu             h * silu(g) of x = [h, g] (Mochi's feed-forward activation; engine: one CUDA kernel for bf16)
  fp8_linear         linear with an e4m3 weight (per-output-feature scales) and the input quantised per row,
                     optionally through GELU and concatenated from two tensors (engine: a quantisation
                     kernel + torch's FP8 _scaled_mm on CUDA; opt-in "fp8" exports only)

The references here compose torch ops with exactly the roundings of the unfused modules (as the engine's
CPU path does), so fp32 exports stay bit-identical to diffusers-faithful eager code.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """q/k/v [B, H, S, D]; key_mask bool [B, S_k] (True = attend) or None."""
    mask = None
    if key_mask is not None:
        mask = key_mask.to(torch.bool)[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)


def halo_conv2d_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                          padding: List[int]) -> torch.Tensor:
    """conv2d with stride 1, dilation 1, groups 1 and zero padding (padding[0] rows, padding[1] columns)."""
    return F.conv2d(x, weight, bias, stride=1, padding=(int(padding[0]), int(padding[1])))


def halo_conv3d_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: List[int],
                          padding: List[int], replicate: bool, time_pad: int = 0) -> torch.Tensor:
    """F.pad(x, (pw, pw, ph, ph, time_pad, 0), replicate or zeros) then conv3d(stride, no padding);
    x [B, C, T, H, W]."""
    ph, pw, pt = int(padding[0]), int(padding[1]), int(time_pad)
    st = (int(stride[0]), int(stride[1]), int(stride[2]))
    if not replicate:
        if pt > 0:
            x = F.pad(x, (0, 0, 0, 0, pt, 0))
        return F.conv3d(x, weight, bias, stride=st, padding=(0, ph, pw))
    return F.conv3d(F.pad(x, (pw, pw, ph, ph, pt, 0), mode="replicate"), weight, bias, stride=st)


def group_norm_reference(x: torch.Tensor, num_groups: int, weight: Optional[torch.Tensor],
                         bias: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """F.group_norm over [B, C, *spatial]."""
    return F.group_norm(x, num_groups, weight, bias, eps)


def spatial_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked SDPA; q/k/v [B, H, S, D] with S the spatial tokens (rows first)."""
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)


def gather_rows_reference(x: torch.Tensor, dim: int) -> torch.Tensor:
    """One rank holds every row: x itself (a copy: the schema's output does not alias its input)."""
    return x.clone()


def _head_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """[B, S, H*D] -> RMSNorm over each head's D values (diffusers RMSNorm), as [B, H, S, D]."""
    d = weight.numel()
    xh = x.reshape(x.shape[0], x.shape[1], x.shape[2] // d, d).transpose(1, 2)
    var = xh.to(torch.float32).pow(2).mean(-1, keepdim=True)
    y = xh * torch.rsqrt(var + eps)
    if weight.dtype in (torch.float16, torch.bfloat16):
        y = y.to(weight.dtype)
    return y * weight


def rms_rope_reference(x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float,
                       x2: Optional[torch.Tensor] = None, weight2: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RMSNorm of x [B, S1, H*D] (then x2 [B, S2, H*D] with weight2) + FLUX RoPE (cos/sin fp32 [S1+S2, D],
    pairs repeat-interleaved) -> [B, H, S1+S2, D]."""
    y = _head_rms_norm(x, weight, eps)
    if x2 is not None:
        y = torch.cat([y, _head_rms_norm(x2, weight2, eps)], dim=2)
    b, h, s, d = y.shape
    pairs = y.reshape(b, h, s, d // 2, 2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(b, h, s, d)
    out = (y.float() * cos[None, None] + rotated.float() * sin[None, None]).to(y.dtype)
    return out.transpose(1, 2).contiguous().transpose(1, 2)  # stored [B, S, H, D], as the engine's kernel


def layer_norm_rope_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cos: Optional[torch.Tensor],
                              sin: Optional[torch.Tensor], eps: float, rope_from: int) -> torch.Tensor:
    """Per-head LayerNorm (weight, bias [D]) of x [B, S, H*D], then diffusers' apply_rotary_emb(use_real=True,
    unbind_dim=-1) with cos/sin fp32 [S - rope_from, D] on rows >= rope_from -> [B, H, S, D]."""
    b, s, hd = x.shape
    d = weight.numel()
    y = F.layer_norm(x.reshape(b, s, hd // d, d), [d], weight, bias, eps)
    if cos is not None and sin is not None and rope_from < s:
        r = y[:, rope_from:]
        pairs = r.reshape(r.shape[0], r.shape[1], r.shape[2], d // 2, 2)
        rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(r.shape)
        out = (r.float() * cos[None, :, None] + rotated.float() * sin[None, :, None]).to(y.dtype)
        y = torch.cat([y[:, :rope_from], out], dim=1)
    return y.contiguous().transpose(1, 2)  # stored [B, S, H, D], as the engine's kernel


def _head_rms_norm_once(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """MochiRMSNorm over each head's D values of x [B, S, H*D] (one rounding) -> [B, S, H, D]."""
    d = weight.numel()
    xh = x.reshape(x.shape[0], x.shape[1], x.shape[2] // d, d)
    var = xh.to(torch.float32).pow(2).mean(-1, keepdim=True)
    return (xh * torch.rsqrt(var + eps) * weight).to(x.dtype)


def rms_rope_per_head_reference(x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                                eps: float, x2: Optional[torch.Tensor] = None,
                                weight2: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mochi's q (or k): video rows x [B, S1, H*D] normed and rotated (diffusers' Mochi apply_rotary_emb, cos/sin
    fp32 [S1, H, D/2] on the (even, odd) pairs), then text rows x2 normed (weight2) -> [B, H, S1+S2, D]."""
    n = _head_rms_norm_once(x, weight, eps)
    xe, xo = n[..., 0::2].float(), n[..., 1::2].float()
    y = torch.stack([(xe * cos - xo * sin).to(n.dtype), (xe * sin + xo * cos).to(n.dtype)], dim=-1).flatten(-2)
    if x2 is not None and weight2 is not None:
        y = torch.cat([y, _head_rms_norm_once(x2, weight2, eps)], dim=1)
    return y.contiguous().transpose(1, 2)  # stored [B, S, H, D], as the engine's kernel


def rms_scale_reference(x: torch.Tensor, scale: torch.Tensor, eps: float,
                        residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x [B, S, D]: (x * rsqrt(mean(x^2) + eps) * scale[:, None]) in float32 (scale [B, D] float32), rounded to x's
    dtype, plus residual when given (MochiRMSNormZero / MochiModulatedRMSNorm and the block's residual add)."""
    xf = x.to(torch.float32)
    n = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * scale[:, None]).to(x.dtype)
    return n if residual is None else residual + n


def layer_norm_modulate_reference(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                                  eps: float) -> torch.Tensor:
    """LayerNorm without affine over the last dim of x [B, S, D], then * (1 + scale) + shift ([B, D])."""
    return F.layer_norm(x, [x.shape[-1]], None, None, eps) * (1 + scale[:, None]) + shift[:, None]


def gated_residual_reference(x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x, y [B, S, D], gate [B, D] -> x + gate[:, None] * y (one rounding, as torch.addcmul)."""
    return torch.addcmul(x, gate.unsqueeze(1), y)


def swiglu_reference(x: torch.Tensor) -> torch.Tensor:
    """x [..., 2N] = [h, g] -> h * silu(g) (diffusers' SwiGLU activation, its roundings)."""
    h, g = x.chunk(2, dim=-1)
    return h * F.silu(g)


def linear_gelu_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.gelu(F.linear(x, weight, bias), approximate="tanh")


E4M3_MAX = 448.0  # largest finite float8_e4m3fn


def fp8_quantize_rows_reference(x: torch.Tensor, gelu_x: bool = False, x2: Optional[torch.Tensor] = None,
                                gelu_x2: bool = False):
    """[act(x), act(x2)] rows -> (e4m3 [M, K], fp32 scale [M, 1]) with absmax(row) mapped to 448."""
    y = F.gelu(x, approximate="tanh") if gelu_x else x
    y = y.reshape(-1, y.shape[-1])
    if x2 is not None:
        y2 = F.gelu(x2, approximate="tanh") if gelu_x2 else x2
        y = torch.cat([y, y2.reshape(-1, y2.shape[-1])], dim=1)
    yf = y.float()
    # times fp32(1/448) (the engine's kernel and its C++ composition do the same on every device)
    scale = yf.abs().amax(-1, keepdim=True).clamp_min(1e-12) * (1.0 / E4M3_MAX)
    return (yf * scale.reciprocal()).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), scale


def fp8_quantize_weight(w: torch.Tensor):
    """[N, K] -> (e4m3 [N, K], fp32 [N]): one scale per output feature (the export's weight quantisation)."""
    wf = w.float()
    scale = wf.abs().amax(-1).clamp_min(1e-12) / E4M3_MAX
    return (wf / scale[:, None]).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), scale


def fp8_linear_reference(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                         bias: Optional[torch.Tensor] = None, gelu_x: bool = False,
                         x2: Optional[torch.Tensor] = None, gelu_x2: bool = False) -> torch.Tensor:
    q, s = fp8_quantize_rows_reference(x, gelu_x, x2, gelu_x2)
    y = (q.float() * s) @ (weight.float() * weight_scale[:, None]).t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).view(tuple(x.shape[:-1]) + (weight.shape[0],))


def _fp8_linear_meta(x, weight, weight_scale, bias=None, gelu_x=False, x2=None, gelu_x2=False):
    return x.new_empty(tuple(x.shape[:-1]) + (weight.shape[0],))


def _linear_gelu_meta(x, weight, bias):
    return x.new_empty(tuple(x.shape[:-1]) + (weight.shape[0],))


def _swiglu_meta(x):
    return x.new_empty(tuple(x.shape[:-1]) + (x.shape[-1] // 2,))


def _rms_rope_meta(x, weight, cos, sin, eps, x2=None, weight2=None):
    d = weight.numel()
    s = x.shape[1] + (x2.shape[1] if x2 is not None else 0)
    return x.new_empty((x.shape[0], s, x.shape[2] // d, d)).transpose(1, 2)


def _layer_norm_rope_meta(x, weight, bias, cos, sin, eps, rope_from):
    d = weight.numel()
    return x.new_empty((x.shape[0], x.shape[1], x.shape[2] // d, d)).transpose(1, 2)


def _same_as_q(q, *args):
    return torch.empty_like(q)


def _halo_conv2d_meta(x, weight, bias, padding):
    h = x.shape[-2] + 2 * padding[0] - weight.shape[-2] + 1
    w = x.shape[-1] + 2 * padding[1] - weight.shape[-1] + 1
    return x.new_empty((x.shape[0], weight.shape[0], h, w))


def _halo_conv3d_meta(x, weight, bias, stride, padding, replicate, time_pad=0):
    t = (x.shape[2] + time_pad - weight.shape[2]) // stride[0] + 1
    h = (x.shape[3] + 2 * padding[0] - weight.shape[3]) // stride[1] + 1
    w = (x.shape[4] + 2 * padding[1] - weight.shape[4]) // stride[2] + 1
    return x.new_empty((x.shape[0], weight.shape[0], t, h, w))


# name -> (schema, reference, meta)
OPS = {
    "attention": ("attention(Tensor q, Tensor k, Tensor v, Tensor? key_mask=None) -> Tensor",
                  attention_reference, _same_as_q),
    "halo_conv2d": ("halo_conv2d(Tensor x, Tensor weight, Tensor? bias, int[2] padding) -> Tensor",
                    halo_conv2d_reference, _halo_conv2d_meta),
    "halo_conv3d": ("halo_conv3d(Tensor x, Tensor weight, Tensor? bias, int[3] stride, int[2] padding, bool replicate, "
                    "int time_pad=0) -> Tensor", halo_conv3d_reference, _halo_conv3d_meta),
    "group_norm": ("group_norm(Tensor x, int num_groups, Tensor? weight, Tensor? bias, float eps) -> Tensor",
                   group_norm_reference, _same_as_q),
    "spatial_attention": ("spatial_attention(Tensor q, Tensor k, Tensor v) -> Tensor",
                          spatial_attention_reference, _same_as_q),
    "gather_rows": ("gather_rows(Tensor x, int dim) -> Tensor", gather_rows_reference, _same_as_q),
    "rms_rope": ("rms_rope(Tensor x, Tensor weight, Tensor cos, Tensor sin, float eps, Tensor? x2=None, "
                 "Tensor? weight2=None) -> Tensor", rms_rope_reference, _rms_rope_meta),
    "layer_norm_rope": ("layer_norm_rope(Tensor x, Tensor weight, Tensor bias, Tensor? cos, Tensor? sin, float eps, "
                        "int rope_from) -> Tensor", layer_norm_rope_reference, _layer_norm_rope_meta),
    "rms_rope_per_head": ("rms_rope_per_head(Tensor x, Tensor weight, Tensor cos, Tensor sin, float eps, "
                          "Tensor? x2=None, Tensor? weight2=None) -> Tensor", rms_rope_per_head_reference,
                          _rms_rope_meta),
    "rms_scale": ("rms_scale(Tensor x, Tensor scale, float eps, Tensor? residual=None) -> Tensor", rms_scale_reference,
                  _same_as_q),
    "layer_norm_modulate": ("layer_norm_modulate(Tensor x, Tensor scale, Tensor shift, float eps) -> Tensor",
                            layer_norm_modulate_reference, _same_as_q),
    "linear_gelu": ("linear_gelu(Tensor x, Tensor weight, Tensor bias) -> Tensor", linear_gelu_reference,
                    _linear_gelu_meta),
    "gated_residual": ("gated_residual(Tensor x, Tensor gate, Tensor y) -> Tensor", gated_residual_reference,
                       _same_as_q),
    "swiglu": ("swiglu(Tensor x) -> Tensor", swiglu_reference, _swiglu_meta),
    "fp8_linear": ("fp8_linear(Tensor x, Tensor weight, Tensor weight_scale, Tensor? bias=None, bool gelu_x=False, "
                   "Tensor? x2=None, bool gelu_x2=False) -> Tensor", fp8_linear_reference, _fp8_linear_meta),
}
SCHEMA = OPS["attention"][0]


def _already_defined(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"ditserve::{name}", "")
        return True
    except RuntimeError:
        return False


_lib = torch.library.Library("ditserve", "FRAGMENT")
for _name, (_schema, _ref, _meta) in OPS.items():
    if _already_defined(_name):
        continue
    _lib.define(_schema)
    _lib.impl(_name, _ref, "CPU")
    _lib.impl(_name, _ref, "CUDA")
    _lib.impl(_name, _meta, "Meta")
