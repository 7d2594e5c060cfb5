"""A scriptable AutoencoderKLCogVideoX decoder whose row-coupled ops are ditserve custom ops (vae.py explains the
row split; docs/architecture.md "3-D causal video VAEs"), decoded one latent frame batch at a time with the
causal convolutions' cache carried between batches, as AutoencoderKLCogVideoX._decode (diffusers 0.34) does.

  nn.GroupNorm over [C, T, H, W] (CogVideoXSpatialNorm3D) -> ditserve::group_norm (statistics all-reduced)
  CogVideoXCausalConv3d(pad_mode="first")             -> T padding with the first frame (first batch) or the
                                                         cache + ditserve::halo_conv3d (zero border on H, W)
  CogVideoXUpsample3D's 3x3 Conv2d (zero padding 1)     -> ditserve::halo_conv2d
  nearest interpolation (zq to the feature size, x2 upsampling), 1x1x1 convs, SiLU, adds
                                                      -> unchanged (row-local: integer scale factors)

CogVideoXSafeConv3d's T chunking of large inputs is mathematically the plain conv (it re-feeds kt - 1 frames), so
the plain conv is used. Anything else is refused (ParallelDecodeError), as in vae.py.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops as _ops  # noqa: F401
from .vae import HaloConv2d, ParallelDecodeError, SplitGroupNorm


class CausalConv(nn.Module):
    def __init__(self, conv: nn.Module, name: str):
        super().__init__()
        c = conv.conv
        if conv.pad_mode == "replicate":
            raise ParallelDecodeError(f"{name}: pad_mode 'replicate'; the CogVideoX decoder pads with zeros")
        kt, kh, kw = c.kernel_size
        if tuple(c.stride) != (1, 1, 1) or tuple(c.dilation) != (1, 1, 1) or c.groups != 1 or kh % 2 != 1 \
                or kw % 2 != 1:
            raise ParallelDecodeError(f"{name}: Conv3d(kernel={c.kernel_size}, stride={c.stride}, "
                                      f"dilation={c.dilation}) cannot be split by rows")
        self.weight = c.weight
        self.bias = c.bias
        self.time_pad = int(kt) - 1
        self.padding = [int(conv.height_pad), int(conv.width_pad)]

    def forward(self, x: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor], first: bool
                ) -> torch.Tensor:
        """T padding: the first frame repeated (first batch) or the previous batch's last kt - 1 input frames
        (caches[len(out)]: convs take their cache in call order); this conv's cache is appended to out."""
        if self.time_pad > 0:
            pad = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1) if first else caches[len(out)]
            x = torch.cat([pad, x], dim=2)
            out.append(x[:, :, x.shape[2] - self.time_pad:].clone())
        return torch.ops.ditserve.halo_conv3d(x, self.weight, self.bias, [1, 1, 1], self.padding, False)


class Pointwise(nn.Module):
    """A 1x1x1 Conv3d (CogVideoXSafeConv3d's T chunking is not scriptable and changes nothing here)."""

    def __init__(self, conv: nn.Module, name: str):
        super().__init__()
        if tuple(conv.kernel_size) != (1, 1, 1) or tuple(conv.stride) != (1, 1, 1) or conv.groups != 1:
            raise ParallelDecodeError(f"{name}: Conv3d(kernel={conv.kernel_size}), expected a 1x1x1 conv")
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv3d(x, self.weight, self.bias)


class SpatialNorm(nn.Module):
    """CogVideoXSpatialNorm3D: GroupNorm(f) * conv_y(zq) + conv_b(zq), zq resized (nearest) to f."""

    def __init__(self, norm: nn.Module, name: str):
        super().__init__()
        self.conv_y = Pointwise(norm.conv_y.conv, name + ".conv_y")
        self.conv_b = Pointwise(norm.conv_b.conv, name + ".conv_b")
        self.norm = SplitGroupNorm(norm.norm_layer)

    def forward(self, f: torch.Tensor, zq: torch.Tensor) -> torch.Tensor:
        t, h, w = f.shape[2], f.shape[3], f.shape[4]
        if t > 1 and t % 2 == 1:
            z_first = F.interpolate(zq[:, :, :1], size=[1, h, w])
            z_rest = F.interpolate(zq[:, :, 1:], size=[t - 1, h, w])
            zq = torch.cat([z_first, z_rest], dim=2)
        else:
            zq = F.interpolate(zq, size=[t, h, w])
        norm_f = self.norm(f)
        return norm_f * self.conv_y(zq) + self.conv_b(zq)


class Resnet(nn.Module):
    def __init__(self, r: nn.Module, name: str):
        super().__init__()
        if r.spatial_norm_dim is None or getattr(r, "use_conv_shortcut", False):
            raise ParallelDecodeError(f"{name}: only spatially normed resnets without conv shortcut are supported")
        if not isinstance(r.nonlinearity, nn.SiLU):
            raise ParallelDecodeError(f"{name}: activation {type(r.nonlinearity).__name__}, expected SiLU")
        self.norm1 = SpatialNorm(r.norm1, name + ".norm1")
        self.conv1 = CausalConv(r.conv1, name + ".conv1")
        self.norm2 = SpatialNorm(r.norm2, name + ".norm2")
        self.conv2 = CausalConv(r.conv2, name + ".conv2")
        # a 1x1x1 channel projection when the channel count changes (row-local)
        self.shortcut = Pointwise(r.conv_shortcut, name + ".conv_shortcut") if r.in_channels != r.out_channels \
            else nn.Identity()

    def forward(self, x: torch.Tensor, zq: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor],
                first: bool) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, zq)), caches, out, first)
        h = self.conv2(F.silu(self.norm2(h, zq)), caches, out, first)
        return h + self.shortcut(x)


class Upsample(nn.Module):
    """CogVideoXUpsample3D: nearest x2 in H, W (and T when compress_time, the odd first frame kept apart), then
    a 3x3 Conv2d per frame."""

    def __init__(self, up: nn.Module, name: str):
        super().__init__()
        self.conv = HaloConv2d(up.conv, name + ".conv")
        self.compress_time = bool(up.compress_time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compress_time:
            if x.shape[2] > 1 and x.shape[2] % 2 == 1:
                x_first = F.interpolate(x[:, :, 0], scale_factor=2.0)
                x_rest = F.interpolate(x[:, :, 1:], scale_factor=2.0)
                x = torch.cat([x_first[:, :, None], x_rest], dim=2)
            elif x.shape[2] > 1:
                x = F.interpolate(x, scale_factor=2.0)
            else:
                x = F.interpolate(x.squeeze(2), scale_factor=2.0)[:, :, None]
        else:
            b, c, t, h, w = x.shape
            x = F.interpolate(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), scale_factor=2.0)
            x = x.reshape(b, t, c, x.shape[2], x.shape[3]).permute(0, 2, 1, 3, 4)
        b, c, t, h, w = x.shape
        y = self.conv(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        return y.reshape(b, t, y.shape[1], y.shape[2], y.shape[3]).permute(0, 2, 1, 3, 4)


class Block(nn.Module):
    """CogVideoXMidBlock3D / CogVideoXUpBlock3D: resnets conditioned on zq, then an optional upsampler."""

    def __init__(self, block: nn.Module, name: str):
        super().__init__()
        if any(a is not None for a in getattr(block, "attentions", []) or []):
            raise ParallelDecodeError(f"{name}: attention in a decoder block is not supported")
        self.resnets = nn.ModuleList([Resnet(r, f"{name}.resnets.{i}") for i, r in enumerate(block.resnets)])
        ups = getattr(block, "upsamplers", None)
        self.upsamplers = nn.ModuleList([Upsample(u, f"{name}.upsamplers.{i}") for i, u in enumerate(ups or [])])

    def forward(self, x: torch.Tensor, zq: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor],
                first: bool) -> torch.Tensor:
        for r in self.resnets:
            x = r(x, zq, caches, out, first)
        for u in self.upsamplers:
            x = u(x)
        return x


class CogVaeDecode(nn.Module):
    """AutoencoderKLCogVideoX's post_quant_conv + decoder on one latent frame batch [B, C, t, h, w] (already
    / scaling_factor), its conv cache a tensor list in call order. The engine's frame-batch loop calls
    first_single / first_even / first_odd (the video's first batch: 1, 2 or 3 frames; no cache) and then next."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        d = vae.decoder
        pq = vae.post_quant_conv
        self.post_quant_conv = Pointwise(pq, "post_quant_conv") if pq is not None else nn.Identity()
        self.conv_in = CausalConv(d.conv_in, "decoder.conv_in")
        self.mid_block = Block(d.mid_block, "decoder.mid_block")
        self.up_blocks = nn.ModuleList([Block(u, f"decoder.up_blocks.{i}") for i, u in enumerate(d.up_blocks)])
        self.norm_out = SpatialNorm(d.norm_out, "decoder.norm_out")
        self.conv_out = CausalConv(d.conv_out, "decoder.conv_out")

    def decode(self, z: torch.Tensor, caches: List[torch.Tensor], first: bool
               ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        out: List[torch.Tensor] = []
        zq = self.post_quant_conv(z)
        x = self.conv_in(zq, caches, out, first)
        x = self.mid_block(x, zq, caches, out, first)
        for up in self.up_blocks:
            x = up(x, zq, caches, out, first)
        x = F.silu(self.norm_out(x, zq))
        return self.conv_out(x, caches, out, first), out

    @torch.jit.export
    def first_single(self, z: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return self.decode(z, [], True)

    @torch.jit.export
    def first_even(self, z: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return self.decode(z, [], True)

    @torch.jit.export
    def first_odd(self, z: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return self.decode(z, [], True)

    @torch.jit.export
    def next(self, z: torch.Tensor, cache: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return self.decode(z, cache, False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z, [], True)[0]
