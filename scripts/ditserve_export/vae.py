"""A traceable AutoencoderKL decoder whose spatially coupled ops are ditserve custom ops.

On one rank the ops are the plain torch ops (ops.py), so the traced decoder equals diffusers'
``vae.decode``.  The engine can split the decoder's input latent by rows over the ranks of a group
(docs/architecture.md, "Parallel VAE decode"): every op that mixes rows then exchanges what it needs,
and every other op is row-local, so each rank computes exactly its rows of the full image:

  nn.Conv2d, kernel > 1    -> ditserve::halo_conv2d      (halo rows from the neighbouring ranks)
  nn.GroupNorm             -> ditserve::group_norm       (per-group statistics combined over ranks)
  mid-block Attention SDPA -> ditserve::spatial_attention (keys/values gathered from all ranks)
  1x1 convs, Linear, SiLU, nearest 2x upsampling, residual adds: unchanged (row-local)

Anything else in the decoder is refused (ParallelDecodeError): a module this file does not know could
mix rows and would silently break the split.
"""
import copy
from typing import Optional

import torch
import torch.nn as nn

from . import ops as _ops  # noqa: F401  (torch.ops.ditserve.* must exist before tracing)


class ParallelDecodeError(RuntimeError):
    pass


class HaloConv2d(nn.Module):
    """A stride-1 "same" nn.Conv2d through ditserve::halo_conv2d (same parameter names)."""

    def __init__(self, conv: nn.Conv2d, name: str):
        super().__init__()
        kh, kw = conv.kernel_size
        if isinstance(conv.padding, str):
            raise ParallelDecodeError(f"{name}: padding={conv.padding!r}; need explicit integers")
        ph, pw = conv.padding
        if (conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
                or kh != 2 * ph + 1):
            raise ParallelDecodeError(
                f"{name}: Conv2d(kernel={conv.kernel_size}, stride={conv.stride}, padding={conv.padding}, "
                f"dilation={conv.dilation}, groups={conv.groups}, padding_mode={conv.padding_mode}) cannot be "
                "split by rows (need stride 1, dilation 1, groups 1, zero padding, kernel_h == 2*padding_h+1)")
        self.weight = conv.weight
        self.bias = conv.bias
        self.padding = [int(ph), int(pw)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.ditserve.halo_conv2d(x, self.weight, self.bias, self.padding)


class SplitGroupNorm(nn.Module):
    """nn.GroupNorm through ditserve::group_norm (same parameter names)."""

    def __init__(self, gn: nn.GroupNorm):
        super().__init__()
        self.num_groups = int(gn.num_groups)
        self.eps = float(gn.eps)
        self.weight = gn.weight if gn.affine else None
        self.bias = gn.bias if gn.affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.ditserve.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class SpatialAttnProcessor:
    """diffusers' AttnProcessor2_0 for unmasked self-attention over the spatial tokens of a feature map,
    with F.scaled_dot_product_attention replaced by ditserve::spatial_attention."""

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: Optional[torch.Tensor] = None,
                 attention_mask: Optional[torch.Tensor] = None, temb: Optional[torch.Tensor] = None,
                 *args, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ParallelDecodeError("spatial attention is unmasked self-attention only")
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        hidden_states = torch.ops.ditserve.spatial_attention(query, key, value)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _check_attention(attn, name: str) -> None:
    bad = [a for a in ("spatial_norm", "norm_q", "norm_k", "norm_cross") if getattr(attn, a, None)]
    if bad or attn.is_cross_attention:
        raise ParallelDecodeError(f"{name}: attention with {bad or 'cross-attention'} is not supported")


def _check_upsample(up, name: str) -> None:
    if up.norm is not None or up.use_conv_transpose or not up.interpolate:
        raise ParallelDecodeError(f"{name}: only nearest interpolation + conv upsampling is row-local")


def _patch(decoder: nn.Module) -> nn.Module:
    """Replaces, in place, the row-coupled modules of `decoder`; refuses modules it does not know."""
    from diffusers.models.attention_processor import Attention
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, UpDecoderBlock2D
    from diffusers.models.upsampling import Upsample2D

    # containers whose forward only chains their children (checked attribute by attribute above)
    containers = (nn.ModuleList, ResnetBlock2D, UNetMidBlock2D, UpDecoderBlock2D, type(decoder))
    row_local = (nn.Linear, nn.SiLU, nn.Dropout, nn.Identity)
    for name, module in list(decoder.named_modules()):
        if isinstance(module, Attention):
            _check_attention(module, name)
            module.set_processor(SpatialAttnProcessor())
        elif isinstance(module, Upsample2D):
            _check_upsample(module, name)
        elif isinstance(module, ResnetBlock2D):
            if module.upsample or module.downsample or module.time_emb_proj is not None:
                raise ParallelDecodeError(f"{name}: resnet with up/downsampling or time embedding")
        elif name and not isinstance(module, containers + row_local + (nn.Conv2d, nn.GroupNorm)):
            raise ParallelDecodeError(f"{name}: {type(module).__name__} is not known to be row-local")
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Conv2d) and child.kernel_size != (1, 1):
                setattr(module, child_name, HaloConv2d(child, full))
            elif isinstance(child, nn.Conv2d) and (child.stride != (1, 1) or child.padding != (0, 0)):
                raise ParallelDecodeError(f"{full}: 1x1 conv with stride/padding")
            elif isinstance(child, nn.GroupNorm):
                setattr(module, child_name, SplitGroupNorm(child))
    return decoder


class ParallelVaeDecode(nn.Module):
    """latents [B, C, h, w] (already unscaled) -> image [B, 3, s*h, s*w]: AutoencoderKL.decode (no tiling,
    no slicing) on a copy of the VAE's decoder with ditserve's split-capable ops."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        if getattr(vae, "use_tiling", False) or getattr(vae, "use_slicing", False):
            raise ParallelDecodeError("disable VAE tiling/slicing before exporting")
        pqc = vae.post_quant_conv
        if pqc is not None and (not isinstance(pqc, nn.Conv2d) or pqc.kernel_size != (1, 1)):
            raise ParallelDecodeError(f"post_quant_conv {pqc} is not a 1x1 conv")
        self.post_quant_conv = copy.deepcopy(pqc)
        self.decoder = _patch(copy.deepcopy(vae.decoder))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)
