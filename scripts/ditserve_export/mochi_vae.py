"""A traceable AutoencoderKLMochi decoder whose row-coupled ops are ditserve custom ops (vae.py explains the
row split; docs/architecture.md "3-D causal video VAEs").

diffusers' decoder (0.34, one-shot decode as MochiPipeline runs it) is: conv_in (1x1x1), mid block, up blocks
(resnets, a channel Linear, depth-to-space by (t, 2, 2)), mid block, SiLU, proj_out (Linear), then the first
temporal_compression - 1 frames are dropped. Inside the resnets:

  per-frame GroupNorm (MochiChunkedGroupNorm3D)    -> ditserve::group_norm on frames folded into the batch
  CogVideoXCausalConv3d(pad_mode="replicate")      -> the first frame repeated kt - 1 times in front (causal T
                                                      padding) + ditserve::halo_conv3d(replicate border on H, W)
                                                      (stride 1 in T: decode_chunk keeps each conv's last kt - 1
                                                      input frames, so the video decodes exactly in T chunks)
  1x1x1 conv, Linear over channels, SiLU, adds,
  depth-to-space                                   -> unchanged (row-local: latent row r makes output rows
                                                      r * 8 .. r * 8 + 7)

Anything else is refused (ParallelDecodeError), as in vae.py. The decoder has no attention (diffusers builds
the decoder's mid blocks with add_attention=False).
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops as _ops  # noqa: F401
from .vae import ParallelDecodeError


class FrameGroupNorm(nn.Module):
    def __init__(self, norm: nn.Module):
        super().__init__()
        gn = norm.norm_layer
        self.num_groups = int(gn.num_groups)
        self.eps = float(gn.eps)
        self.weight = gn.weight
        self.bias = gn.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = x.permute(0, 2, 1, 3, 4).flatten(0, 1)
        y = torch.ops.ditserve.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        return y.unflatten(0, (b, -1)).permute(0, 2, 1, 3, 4)


class CausalConv(nn.Module):
    def __init__(self, conv: nn.Module, name: str):
        super().__init__()
        c = conv.conv
        if conv.pad_mode != "replicate":
            raise ParallelDecodeError(f"{name}: pad_mode {conv.pad_mode!r}; the Mochi decoder uses 'replicate'")
        kt, kh, kw = c.kernel_size
        if c.stride != (1, 1, 1) or c.dilation != (1, 1, 1) or c.groups != 1 or kh % 2 != 1 or kw % 2 != 1:
            raise ParallelDecodeError(f"{name}: Conv3d(kernel={c.kernel_size}, stride={c.stride}, "
                                      f"dilation={c.dilation}) cannot be split by rows")
        self.weight = c.weight
        self.bias = c.bias
        self.time_pad = int(conv.time_pad)
        self.stride = [int(c.stride[0]), 1, 1]
        self.padding = [int(conv.height_pad), int(conv.width_pad)]

    def forward(self, x: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor], first: bool
                ) -> torch.Tensor:
        """The causal T padding is the first frame repeated (first chunk) or the previous chunk's last input
        frames (caches[len(out)]: convs take their cache in call order); this conv's cache is appended to out."""
        if self.time_pad > 0:
            pad = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1) if first else caches[len(out)]
            x = torch.cat([pad, x], dim=2)
            out.append(x[:, :, x.shape[2] - self.time_pad:])
        return torch.ops.ditserve.halo_conv3d(x, self.weight, self.bias, self.stride, self.padding, True)


class Resnet(nn.Module):
    def __init__(self, r: nn.Module, name: str):
        super().__init__()
        self.norm1 = FrameGroupNorm(r.norm1)
        self.conv1 = CausalConv(r.conv1, name + ".conv1")
        self.norm2 = FrameGroupNorm(r.norm2)
        self.conv2 = CausalConv(r.conv2, name + ".conv2")

    def forward(self, x: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor], first: bool
                ) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), caches, out, first)
        h = self.conv2(F.silu(self.norm2(h)), caches, out, first)
        return h + x


class Resnets(nn.Module):
    def __init__(self, block: nn.Module, name: str):
        super().__init__()
        if any(a is not None for a in getattr(block, "attentions", [])):
            raise ParallelDecodeError(f"{name}: attention in a decoder block is not supported")
        self.resnets = nn.ModuleList([Resnet(r, f"{name}.resnets.{i}") for i, r in enumerate(block.resnets)])

    def forward(self, x: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor], first: bool
                ) -> torch.Tensor:
        for r in self.resnets:
            x = r(x, caches, out, first)
        return x


class UpBlock(nn.Module):
    def __init__(self, up: nn.Module, name: str):
        super().__init__()
        self.resnets = Resnets(up, name)
        self.proj = up.proj
        self.st = int(up.temporal_expansion)
        self.ss = int(up.spatial_expansion)

    def forward(self, x: torch.Tensor, caches: List[torch.Tensor], out: List[torch.Tensor], first: bool
                ) -> torch.Tensor:
        x = self.resnets(x, caches, out, first)
        x = self.proj(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        b, _, t, h, w = x.shape
        x = x.reshape(b, -1, self.st, self.ss, self.ss, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        return x.reshape(b, -1, t * self.st, h * self.ss, w * self.ss)


class MochiVaeDecode(nn.Module):
    """latents [B, 12, T, h, w] (already de-normalised: z * std / scaling_factor + mean) -> video
    [B, 3, 6T - 5, 8h, 8w] in about [-1, 1], exactly AutoencoderKLMochi.decode with the default settings."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        d = vae.decoder
        if not isinstance(d.conv_in, nn.Conv3d) or d.conv_in.kernel_size != (1, 1, 1):
            raise ParallelDecodeError("decoder.conv_in must be a 1x1x1 Conv3d")
        self.conv_in = d.conv_in
        self.block_in = Resnets(d.block_in, "decoder.block_in")
        self.up_blocks = nn.ModuleList([UpBlock(u, f"decoder.up_blocks.{i}") for i, u in enumerate(d.up_blocks)])
        self.block_out = Resnets(d.block_out, "decoder.block_out")
        self.proj_out = d.proj_out
        self.drop = int(vae.temporal_compression_ratio) - 1 if vae.drop_last_temporal_frames else 0
        self.temporal = int(vae.temporal_compression_ratio)

    @torch.jit.export
    def decode_chunk(self, z: torch.Tensor, caches: List[torch.Tensor], first: bool
                     ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Latent frames [t0, t1) given the caches of the chunk before (first: none; the video's start) ->
        (their frames, this chunk's caches). Every op is causal in T with a 2-frame history (kept in the caches)
        or per frame, so consecutive chunks concatenate to exactly the one-shot decode."""
        out: List[torch.Tensor] = []
        x = self.block_in(self.conv_in(z), caches, out, first)
        for up in self.up_blocks:
            x = up(x, caches, out, first)
        x = F.silu(self.block_out(x, caches, out, first))
        x = self.proj_out(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        if first and self.drop > 0 and x.shape[2] >= self.temporal:
            x = x[:, :, self.drop:]
        return x, out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_chunk(z, [], True)[0]
