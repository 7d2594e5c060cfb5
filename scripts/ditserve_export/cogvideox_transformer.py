"""ditserve's CogVideoX transformer: diffusers' CogVideoXTransformer3DModel (0.34) as a TorchScript module with
the same parameter names except the stacked q/k/v projection (``from_diffusers_state_dict`` maps a diffusers state
dict), callable in pieces (docs/models/cogvideox.md):

  time_embedding_of(timestep [B])                       -> emb [B, time_embed_dim]
  embed_text(text [B, T, text_embed_dim])               -> [B, T, D]
  embed_video(latents [B, F, C, H, W], pos [N, D]?)     -> [B, N, D]   (pos: 2b's sin-cos positions)
  blocks(start, end, video, text, emb, cos?, sin?, key_mask?) -> (video, text)
  head(video, emb)                                      -> [B, N, p*p*p_t*C]   (token-local)
  unpatchify(x, frames, height, width)                  -> [B, F, C, H, W]
  sincos_positions(frames, h, w) / rotary(frames, h, w) -> what the pipeline computes for a latent grid

Every piece but attention is token-local, so the engine runs them on its shard of [text, video] tokens;
attention is torch.ops.ditserve.attention (context parallel in the engine) with a key mask for the shard
padding. CogVideoX attends to every one of its 226 text tokens (padding included), as diffusers.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops as _ops  # noqa: F401  (torch.ops.ditserve.attention)
from .flux_transformer import FeedForward, Fp8Linear, fuse_diffusers_state_dict


def _sincos_1d(embed_dim: int, pos: torch.Tensor) -> torch.Tensor:
    """diffusers' get_1d_sincos_pos_embed_from_grid(output_type="pt")."""
    omega = torch.arange(embed_dim // 2, dtype=torch.float64, device=pos.device)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = torch.outer(pos.reshape(-1), omega)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def _rotary_1d(dim: int, pos: torch.Tensor, theta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """diffusers' get_1d_rotary_pos_embed(use_real=True, repeat_interleave_real=True), float32 freqs."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=pos.device) / dim))
    freqs = torch.outer(pos, freqs)
    return freqs.cos().repeat_interleave(2, dim=1).float(), freqs.sin().repeat_interleave(2, dim=1).float()


def _combine_thw(t: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    nt, nh, nw = t.shape[0], h.shape[0], w.shape[0]
    return torch.cat([t[:, None, None, :].expand(-1, nh, nw, -1), h[None, :, None, :].expand(nt, -1, nw, -1),
                      w[None, None, :, :].expand(nt, nh, -1, -1)], dim=-1).reshape(nt * nh * nw, -1)


def _ln_modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, w: Optional[torch.Tensor],
                 b: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """LayerNorm(x; w, b, eps) * (1 + scale[:, None]) + shift[:, None] as the engine's one-kernel
    layer_norm_modulate (a LayerNorm without affine): the affine folds into the [B, D] modulation,
    LN(x) w + b -> LN(x) (w (1 + scale)) + (b (1 + scale) + shift)."""
    if w is not None:
        scale1 = 1 + scale
        if b is not None:
            shift = b * scale1 + shift
        scale = w * scale1 - 1
    return torch.ops.ditserve.layer_norm_modulate(x, scale, shift, eps)


class LayerNormZero(nn.Module):
    """CogVideoXLayerNormZero: one adaLN for the video and one for the text stream; gates [B, D]."""

    def __init__(self, conditioning_dim: int, dim: int, affine: bool, eps: float):
        super().__init__()
        self.linear = nn.Linear(conditioning_dim, 6 * dim, bias=True)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)

    def forward(self, video: torch.Tensor, text: torch.Tensor, emb: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        shift, scale, gate, enc_shift, enc_scale, enc_gate = self.linear(F.silu(emb)).chunk(6, dim=1)
        w, b, eps = self.norm.weight, self.norm.bias, self.norm.eps
        return (_ln_modulate(video, scale, shift, w, b, eps), _ln_modulate(text, enc_scale, enc_shift, w, b, eps),
                gate, enc_gate)


class Attention(nn.Module):
    """Joint attention over [text, video]: diffusers' to_q/to_k/to_v stacked into one GEMM (``to_qkv``,
    FUSED_PROJECTIONS), the per-head q/k LayerNorm and the video tokens' RoPE in one ditserve op that writes
    the heads in the [B, S, H, D] layout attention reads, and returns its output in (merging heads is free)."""

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool, out_bias: bool, fp8: bool = False):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        self.to_qkv = Fp8Linear(dim, 3 * inner) if fp8 else nn.Linear(dim, 3 * inner, bias=bias)
        self.norm_q = nn.LayerNorm(head_dim, eps=1e-6, elementwise_affine=True)
        self.norm_k = nn.LayerNorm(head_dim, eps=1e-6, elementwise_affine=True)
        self.to_out = nn.ModuleList([Fp8Linear(inner, dim) if fp8 else nn.Linear(inner, dim, bias=out_bias),
                                     nn.Dropout(0.0)])

    def forward(self, video: torch.Tensor, text: torch.Tensor, cos: Optional[torch.Tensor],
                sin: Optional[torch.Tensor], key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        t = text.shape[1]
        b = video.shape[0]
        n = self.heads * self.head_dim
        qkv = self.to_qkv(torch.cat([text, video], dim=1))
        q = torch.ops.ditserve.layer_norm_rope(qkv[:, :, :n], self.norm_q.weight, self.norm_q.bias, cos, sin,
                                               self.norm_q.eps, t)
        k = torch.ops.ditserve.layer_norm_rope(qkv[:, :, n:2 * n], self.norm_k.weight, self.norm_k.bias, cos, sin,
                                               self.norm_k.eps, t)
        v = qkv[:, :, 2 * n:].view(b, -1, self.heads, self.head_dim).transpose(1, 2)
        o = torch.ops.ditserve.attention(q, k, v, key_mask)
        o = self.to_out[0](o.transpose(1, 2).reshape(b, -1, n))
        return o[:, t:], o[:, :t]


# fused parameter -> the diffusers parameters whose output rows it stacks (fuse_diffusers_state_dict)
FUSED_PROJECTIONS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "transformer_blocks": {"attn1.to_qkv": ("attn1.to_q", "attn1.to_k", "attn1.to_v")},
}


def from_diffusers_state_dict(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """diffusers CogVideoXTransformer3DModel state dict -> CogVideoXTransformer's (in place): q/k/v stacked, the
    2b sin-cos position table dropped (recomputed per request from the latent grid)."""
    sd.pop("patch_embed.pos_embedding", None)
    return fuse_diffusers_state_dict(sd, FUSED_PROJECTIONS)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, time_embed_dim: int, c: Dict, fp8: bool = False):
        super().__init__()
        affine, eps = bool(c["norm_elementwise_affine"]), float(c["norm_eps"])
        self.norm1 = LayerNormZero(time_embed_dim, dim, affine, eps)
        self.attn1 = Attention(dim, heads, head_dim, bool(c["attention_bias"]), True, fp8)
        self.norm2 = LayerNormZero(time_embed_dim, dim, affine, eps)
        # diffusers FeedForward(activation_fn="gelu-approximate", bias=True): FLUX's (net.0.proj with the GELU in
        # the GEMM's epilogue, net.2; e4m3 weights with fp8, the GELU then folded into net.2's input quantisation)
        self.ff = FeedForward(dim, 4, fp8)

    def forward(self, video: torch.Tensor, text: torch.Tensor, emb: torch.Tensor, cos: Optional[torch.Tensor],
                sin: Optional[torch.Tensor], key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        t = text.shape[1]
        # x + gate * y as one gated_residual kernel each (x + gate[:, None] * y, one rounding)
        nv, nt, gate, enc_gate = self.norm1(video, text, emb)
        av, at = self.attn1(nv, nt, cos, sin, key_mask)
        video = torch.ops.ditserve.gated_residual(video, gate, av)
        text = torch.ops.ditserve.gated_residual(text, enc_gate, at)
        nv, nt, gate, enc_gate = self.norm2(video, text, emb)
        ff = self.ff(torch.cat([nt, nv], dim=1))
        video = torch.ops.ditserve.gated_residual(video, gate, ff[:, t:])
        text = torch.ops.ditserve.gated_residual(text, enc_gate, ff[:, :t])
        return video, text


DEFAULTS = dict(num_attention_heads=30, attention_head_dim=64, in_channels=16, out_channels=16, flip_sin_to_cos=True,
                freq_shift=0, time_embed_dim=512, ofs_embed_dim=None, text_embed_dim=4096, num_layers=30,
                attention_bias=True, sample_width=90, sample_height=60, sample_frames=49, patch_size=2,
                patch_size_t=None, temporal_compression_ratio=4, max_text_seq_length=226,
                activation_fn="gelu-approximate", timestep_activation_fn="silu", norm_elementwise_affine=True,
                norm_eps=1e-5, spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
                use_rotary_positional_embeddings=False, use_learned_positional_embeddings=False, patch_bias=True,
                ff_inner_dim=None, ff_bias=True)


def full_config(cfg: Dict) -> Dict:
    c = dict(DEFAULTS)
    c.update({k: v for k, v in cfg.items() if not k.startswith("_")})
    return c


class _Embed(nn.Module):
    def __init__(self, c: Dict, dim: int):
        super().__init__()
        p, pt, ch = int(c["patch_size"]), c["patch_size_t"], int(c["in_channels"])
        if pt is None:
            self.proj = nn.Conv2d(ch, dim, kernel_size=(p, p), stride=p, bias=bool(c["patch_bias"]))
        else:
            self.proj = nn.Linear(ch * p * p * int(pt), dim)  # diffusers' Linear ignores patch_bias
        self.text_proj = nn.Linear(int(c["text_embed_dim"]), dim)


class _TimeEmbedding(nn.Module):
    def __init__(self, dim: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(dim, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)


class _AdaNorm(nn.Module):
    def __init__(self, time_embed_dim: int, dim: int, affine: bool, eps: float):
        super().__init__()
        self.linear = nn.Linear(time_embed_dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)


class CogVideoXTransformer(nn.Module):
    """fp8: the blocks' GEMMs (attn1.to_qkv, attn1.to_out.0, ff.net.0.proj, ff.net.2) hold float8 e4m3 weights with
    per-output-feature scales (opt-in export precision, as FLUX's)."""

    def __init__(self, cfg: Dict, fp8: bool = False):
        super().__init__()
        c = full_config(cfg)
        if c["ff_inner_dim"] not in (None, 4 * int(c["num_attention_heads"]) * int(c["attention_head_dim"])) or \
                not c["ff_bias"]:
            raise ValueError("only the released MLP (ff_inner_dim 4 x width, ff_bias true) is supported")
        if fp8 and not c["attention_bias"]:
            raise ValueError("fp8 needs attention_bias (every released CogVideoX has it)")
        if c["ofs_embed_dim"]:
            raise ValueError("ofs_embed_dim (CogVideoX 1.5 image-to-video) is not supported")
        if c["use_learned_positional_embeddings"]:
            raise ValueError("learned positional embeddings (CogVideoX image-to-video) are not supported")
        if c["activation_fn"] != "gelu-approximate" or c["timestep_activation_fn"] != "silu":
            raise ValueError("only activation_fn gelu-approximate and timestep_activation_fn silu are supported")
        heads, head_dim = int(c["num_attention_heads"]), int(c["attention_head_dim"])
        dim = heads * head_dim
        ted = int(c["time_embed_dim"])
        self.inner_dim = dim
        self.flip_sin_to_cos = bool(c["flip_sin_to_cos"])
        self.freq_shift = float(c["freq_shift"])
        self.patch_size = int(c["patch_size"])
        self.patch_size_t = int(c["patch_size_t"] or 0)  # 0: 1.0 models (no temporal patching)
        self.out_channels = int(c["out_channels"])
        self.rope = bool(c["use_rotary_positional_embeddings"])
        self.head_dim = head_dim
        self.sample_height = int(c["sample_height"])
        self.sample_width = int(c["sample_width"])
        self.temporal_compression_ratio = int(c["temporal_compression_ratio"])
        self.spatial_interpolation_scale = float(c["spatial_interpolation_scale"])
        self.temporal_interpolation_scale = float(c["temporal_interpolation_scale"])
        self.patch_embed = _Embed(c, dim)
        self.time_embedding = _TimeEmbedding(dim, ted)
        self.transformer_blocks = nn.ModuleList([Block(dim, heads, head_dim, ted, c, fp8)
                                                 for _ in range(int(c["num_layers"]))])
        self.norm_final = nn.LayerNorm(dim, eps=float(c["norm_eps"]), elementwise_affine=bool(c["norm_elementwise_affine"]))
        self.norm_out = _AdaNorm(ted, dim, bool(c["norm_elementwise_affine"]), float(c["norm_eps"]))
        p_t = self.patch_size_t if self.patch_size_t > 0 else 1
        self.proj_out = nn.Linear(dim, self.patch_size * self.patch_size * p_t * self.out_channels)

    @torch.jit.export
    def time_embedding_of(self, timestep: torch.Tensor) -> torch.Tensor:
        """Timesteps(inner_dim, flip_sin_to_cos, freq_shift) + TimestepEmbedding; timestep [B] (int or float)."""
        half = self.inner_dim // 2
        exponent = -math.log(10000.0) * torch.arange(0, half, dtype=torch.float32, device=timestep.device)
        exponent = exponent / (half - self.freq_shift)
        emb = timestep[:, None].float() * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
        if self.flip_sin_to_cos:
            emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
        emb = emb.to(self.proj_out.weight.dtype)
        return self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(emb)))

    @torch.jit.export
    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.patch_embed.text_proj(text)

    @torch.jit.export
    def embed_video(self, latents: torch.Tensor, pos: Optional[torch.Tensor]) -> torch.Tensor:
        b, f, ch, h, w = latents.shape
        p = self.patch_size
        if self.patch_size_t == 0:
            x = self.patch_embed.proj(latents.reshape(-1, ch, h, w))
            x = x.view(b, f, x.shape[1], x.shape[2], x.shape[3]).flatten(3).transpose(2, 3).flatten(1, 2)
        else:
            pt = self.patch_size_t
            x = latents.permute(0, 1, 3, 4, 2).reshape(b, f // pt, pt, h // p, p, w // p, p, ch)
            x = self.patch_embed.proj(x.permute(0, 1, 3, 5, 7, 2, 4, 6).flatten(4, 7).flatten(1, 3))
        if pos is not None:
            x = x + pos.to(x.dtype)[None]
        return x

    @torch.jit.export
    def blocks(self, start: int, end: int, video: torch.Tensor, text: torch.Tensor, emb: torch.Tensor,
               cos: Optional[torch.Tensor], sin: Optional[torch.Tensor], key_mask: Optional[torch.Tensor]
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        for i, blk in enumerate(self.transformer_blocks):
            if i >= start and i < end:
                video, text = blk(video, text, emb, cos, sin, key_mask)
        return video, text

    @torch.jit.export
    def head(self, video: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # norm_final is per token: diffusers' 5b path (norm over [text, video], then drop text) is the same.
        x = self.norm_final(video)
        shift, scale = self.norm_out.linear(F.silu(emb)).chunk(2, dim=1)
        n = self.norm_out.norm
        return self.proj_out(_ln_modulate(x, scale, shift, n.weight, n.bias, n.eps))

    @torch.jit.export
    def unpatchify(self, x: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
        b, p = x.shape[0], self.patch_size
        if self.patch_size_t == 0:
            out = x.reshape(b, frames, height // p, width // p, -1, p, p)
            return out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        pt = self.patch_size_t
        out = x.reshape(b, (frames + pt - 1) // pt, height // p, width // p, -1, pt, p, p)
        return out.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)

    @torch.jit.export
    def sincos_positions(self, frames: int, height: int, width: int) -> torch.Tensor:
        """2b's fixed 3-D sin-cos positions of the video tokens [F*h*w, D] (CogVideoXPatchEmbed with
        get_3d_sincos_pos_embed, output_type "pt"), float64; frames/height/width: the latent grid."""
        gh, gw = height // self.patch_size, width // self.patch_size
        dim = self.inner_dim
        grid_h = torch.arange(gh, dtype=torch.float32) / self.spatial_interpolation_scale
        grid_w = torch.arange(gw, dtype=torch.float32) / self.spatial_interpolation_scale
        mesh = torch.meshgrid([grid_w, grid_h], indexing="xy")
        grid = torch.stack(mesh, dim=0).reshape(2, 1, gh, gw)
        spatial = torch.cat([_sincos_1d(3 * dim // 4 // 2, grid[0]), _sincos_1d(3 * dim // 4 // 2, grid[1])], dim=1)
        grid_t = torch.arange(frames, dtype=torch.float32) / self.temporal_interpolation_scale
        temporal = _sincos_1d(dim // 4, grid_t)
        spatial = spatial[None, :, :].repeat_interleave(frames, dim=0)
        temporal = temporal[:, None, :].repeat_interleave(gh * gw, dim=1)
        return torch.cat([temporal, spatial], dim=-1).flatten(0, 1)  # float64: diffusers casts it to the model dtype once

    @torch.jit.export
    def rotary(self, frames: int, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The 3-D RoPE of the video tokens (cos, sin) [F'*h*w, head_dim] float32, as CogVideoXPipeline's
        _prepare_rotary_positional_embeddings; frames: latent frames (padded for 1.5), height/width: latent."""
        p = self.patch_size
        gh, gw = height // p, width // p
        base_w, base_h = self.sample_width // p, self.sample_height // p
        d = self.head_dim
        if self.patch_size_t == 0:
            # get_resize_crop_region_for_grid((gh, gw), base_w, base_h), then the "linspace" grid
            r = gh / gw
            if r > base_h / base_w:
                rh, rw = base_h, int(round(base_h / gh * gw))
            else:
                rw, rh = base_w, int(round(base_w / gw * gh))
            top, left = int(round((base_h - rh) / 2.0)), int(round((base_w - rw) / 2.0))
            grid_h = torch.linspace(float(top), (top + rh) * (gh - 1) / gh, gh, dtype=torch.float32)
            grid_w = torch.linspace(float(left), (left + rw) * (gw - 1) / gw, gw, dtype=torch.float32)
            nt = frames
            grid_t = torch.linspace(0.0, nt * (nt - 1) / nt, nt, dtype=torch.float32)
        else:
            nt = (frames + self.patch_size_t - 1) // self.patch_size_t
            grid_h = torch.arange(base_h, dtype=torch.float32)
            grid_w = torch.arange(base_w, dtype=torch.float32)
            grid_t = torch.arange(nt, dtype=torch.float32)
        t_cos, t_sin = _rotary_1d(d // 4, grid_t, 10000.0)
        h_cos, h_sin = _rotary_1d(d // 8 * 3, grid_h, 10000.0)
        w_cos, w_sin = _rotary_1d(d // 8 * 3, grid_w, 10000.0)
        cos = _combine_thw(t_cos[:nt], h_cos[:gh], w_cos[:gw])
        sin = _combine_thw(t_sin[:nt], h_sin[:gh], w_sin[:gw])
        return cos, sin

    def forward(self, latents: torch.Tensor, text: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The whole transformer on one rank (exporter verification)."""
        b, f, ch, h, w = latents.shape
        emb = self.time_embedding_of(timestep)
        pos: Optional[torch.Tensor] = None
        cos: Optional[torch.Tensor] = None
        sin: Optional[torch.Tensor] = None
        if self.rope:
            cos, sin = self.rotary(f, h, w)
        else:
            frames = f if self.patch_size_t == 0 else f // self.patch_size_t
            pos = self.sincos_positions(frames, h, w)
        video = self.embed_video(latents, pos)
        t = self.embed_text(text)
        video, t = self.blocks(0, len(self.transformer_blocks), video, t, emb, cos, sin, None)
        return self.unpatchify(self.head(video, emb), f, h, w)
