"""A TorchScript HunyuanVideo VAE decoder (diffusers 0.34 ``AutoencoderKLHunyuanVideo``: post_quant_conv + decoder).

Same parameter names as diffusers' ``post_quant_conv`` / ``decoder.*`` (``load_diffusers`` copies them strictly).
It decodes one latent tile [B, C, f, h, w] -> [B, 3, 4(f-1)+1, 8h, 8w]; diffusers' framewise (temporal) tiling and
spatial tiling, which call the decoder on overlapping tiles and blend them, run in the engine
(models/hunyuan_video/hunyuan_video_decode.cc), so one export serves every video length and size.

The causal 3-D convolutions go through ``ditserve::halo_conv3d`` (replicate borders, the causal frames included),
the group norms through ``ditserve::group_norm`` and the mid-block attention's keys through
``ditserve::gather_rows``: on one rank these are the plain ops (ops.py); the engine may split a tile's decode by
latent rows over a group's ranks (model.json "vae.parallel": "rows"), never by time. Every other op is row-local
(1x1x1 convs, SiLU, adds, nearest upsampling).
"""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops as _ops  # noqa: F401  (torch.ops.ditserve.* must exist before scripting)


class CausalConv3d(nn.Module):
    """diffusers HunyuanVideoCausalConv3d: replicate padding (k//2 on H/W, k_t-1 frames in front), then conv."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel)
        self.pad_t = kernel - 1
        self.pad = [kernel // 2, kernel // 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The causal frames and the H/W border in one replicate pad, as diffusers does: one pass over the activations.
        return torch.ops.ditserve.halo_conv3d(x, self.conv.weight, self.conv.bias, [1, 1, 1], self.pad, True,
                                              self.pad_t)


class GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.ditserve.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class Resnet(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = CausalConv3d(cin, cout)
        self.norm2 = GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = CausalConv3d(cout, cout)
        self.conv_shortcut = CausalConv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return h + x


class MidAttention(nn.Module):
    """diffusers Attention(heads=1, group_norm, residual) over every token of the clip with the frame-causal
    mask (a token sees its own and earlier frames: prepare_causal_attention_mask).

    Split by rows, a rank's queries are its rows' tokens and the keys/values every rank's, gathered in row order
    (ditserve::gather_rows), so the mask and the key order are diffusers' own; on one rank this is exactly the
    unsplit attention."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = GroupNorm(groups, channels, eps=1e-6)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape  # h: this rank's rows
        tokens = x.permute(0, 2, 3, 4, 1).flatten(1, 3)  # [B, F*h*W, C]
        y = self.group_norm(tokens.transpose(1, 2)).transpose(1, 2)
        q = self.to_q(y).unsqueeze(1)
        kv = torch.stack([self.to_k(y), self.to_v(y)]).unflatten(2, (f, h, w))  # [2, B, F, h, W, C]
        kv = torch.ops.ditserve.gather_rows(kv, 3)  # [2, B, F, H, W, C]: every row of the frame
        rows = kv.shape[3]
        k = kv[0].flatten(1, 3).unsqueeze(1)
        v = kv[1].flatten(1, 3).unsqueeze(1)
        q_frame = torch.arange(f, device=x.device).repeat_interleave(h * w)
        k_frame = torch.arange(f, device=x.device).repeat_interleave(rows * w)
        mask = k_frame[None, :] <= q_frame[:, None]  # [query, key]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        o = self.to_out[0](o.squeeze(1).to(q.dtype)) + tokens
        return o.unflatten(1, (f, h, w)).permute(0, 4, 1, 2, 3)


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int, attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(channels, channels, groups), Resnet(channels, channels, groups)])
        self.attentions = nn.ModuleList([MidAttention(channels, groups)] if attention else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x)


class Upsample(nn.Module):
    """diffusers HunyuanVideoUpsampleCausal3D: the first frame upsampled in space only, the others in time too."""

    def __init__(self, channels: int, spatial: float, time: float):
        super().__init__()
        self.spatial = spatial
        self.time = time
        self.conv = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.shape[2]
        s = self.spatial
        first = F.interpolate(x[:, :, :1].squeeze(2), scale_factor=[s, s], mode="nearest").unsqueeze(2)
        if f > 1:
            rest = F.interpolate(x[:, :, 1:].contiguous(), scale_factor=[self.time, s, s], mode="nearest")
            x = torch.cat([first, rest], dim=2)
        else:
            x = first
        return self.conv(x)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, groups: int, spatial: bool, time: bool):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        up = Upsample(cout, 2.0 if spatial else 1.0, 2.0 if time else 1.0)
        self.upsamplers = nn.ModuleList([up] if spatial or time else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.resnets:
            x = r(x)
        for u in self.upsamplers:
            x = u(x)
        return x


class Decoder(nn.Module):
    def __init__(self, latent_channels: int, out_channels: int, block_out_channels: List[int], layers_per_block: int,
                 groups: int, mid_attention: bool, spatial_ratio: int, temporal_ratio: int):
        super().__init__()
        if temporal_ratio != 4 or spatial_ratio not in (2, 4, 8, 16):
            raise ValueError(f"temporal ratio {temporal_ratio} / spatial ratio {spatial_ratio} not supported "
                             "(diffusers supports time_compression_ratio 4 only)")
        n = len(block_out_channels)
        spatial_layers = spatial_ratio.bit_length() - 1
        rev = list(reversed(block_out_channels))
        self.conv_in = CausalConv3d(latent_channels, rev[0])
        self.mid_block = MidBlock(rev[0], groups, mid_attention)
        blocks = []
        prev = rev[0]
        for i in range(n):
            final = i == n - 1
            spatial = i < spatial_layers
            time = i >= n - 1 - 2 and not final
            blocks.append(UpBlock(prev, rev[i], layers_per_block + 1, groups, spatial, time))
            prev = rev[i]
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = GroupNorm(groups, block_out_channels[0], eps=1e-6)
        self.conv_out = CausalConv3d(block_out_channels[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(x))
        for blk in self.up_blocks:
            x = blk(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class HunyuanVideoVaeDecode(nn.Module):
    """latents [B, C, f, h, w] (already / scaling_factor) -> video [B, 3, 4(f-1)+1, s*h, s*w] in [-1, 1]:
    AutoencoderKLHunyuanVideo's post_quant_conv + decoder on one tile."""

    def __init__(self, cfg: Dict):
        super().__init__()
        c = int(cfg.get("latent_channels", 16))
        self.post_quant_conv = nn.Conv3d(c, c, kernel_size=1)
        self.decoder = Decoder(c, int(cfg.get("out_channels", 3)), list(cfg.get("block_out_channels",
                                                                               (128, 256, 512, 512))),
                               int(cfg.get("layers_per_block", 2)), int(cfg.get("norm_num_groups", 32)),
                               bool(cfg.get("mid_block_add_attention", True)),
                               int(cfg.get("spatial_compression_ratio", 8)),
                               int(cfg.get("temporal_compression_ratio", 4)))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(latents))

    @staticmethod
    def load_diffusers(vae: nn.Module) -> "HunyuanVideoVaeDecode":
        """Copies post_quant_conv and decoder from a diffusers AutoencoderKLHunyuanVideo (strict names), on the
        source's device and dtype."""
        w = next(vae.parameters())
        m = HunyuanVideoVaeDecode(dict(vae.config)).to(w.device, w.dtype)
        sd = {k: v for k, v in vae.state_dict().items() if k.startswith(("decoder.", "post_quant_conv."))}
        m.load_state_dict(sd, strict=True)
        return m.eval().requires_grad_(False)


def tile_config(vae: nn.Module) -> Tuple[Dict, int, int]:
    """The VAE's tiling parameters (pixel units, diffusers' attribute names) and its compression ratios."""
    keys = ("tile_sample_min_height", "tile_sample_min_width", "tile_sample_min_num_frames",
            "tile_sample_stride_height", "tile_sample_stride_width", "tile_sample_stride_num_frames")
    return ({k: int(getattr(vae, k)) for k in keys}, int(vae.spatial_compression_ratio),
            int(vae.temporal_compression_ratio))
