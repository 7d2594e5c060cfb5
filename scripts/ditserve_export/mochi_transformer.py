"""ditserve's TorchScript-able Mochi-1 transformer.

Numerically it follows diffusers 0.34 ``MochiTransformer3DModel`` and holds the same parameters under the same
names, except that each stream's q/k/v projections are stacked into one GEMM (``from_diffusers_state_dict`` maps a
diffusers state dict). Differences, all deliberate (docs/models/mochi.md):

* attention is ``torch.ops.ditserve.attention(q, k, v, key_mask)`` over the joint sequence [video tokens, text
  tokens] with the prompt's padding as a key mask. diffusers instead drops the padded text tokens per sample
  (data-dependent shapes) and gives them a zero attention output. The video tokens' results are equal; padded
  text tokens get other values here, which nothing reads (they are never keys, and the pooled conditioning is
  computed from the encoder output before the blocks);
* the rotary table is computed once per request (``rope``: diffusers' positions and learned per-head
  frequencies, float32) and passed to the blocks, so the engine can shard its rows over the sequence ranks;
* the model runs in pieces: ``conditioning`` (every block's modulation for all steps of a request, batched),
  ``embed_text`` (caption projection, once per request), ``embed_video`` (patch embedding), ``blocks(start,
  end, ...)`` (First Block Cache splits after block 0), ``head`` (final norm + projection, tokens out;
  the engine unpatchifies after gathering the sequence shards);
* the memory-bound chains are ditserve ops with one CUDA kernel each for bf16 (``rms_scale``: the modulated
  RMSNorms and gated residuals; ``rms_rope_per_head``: q/k norms + RoPE) and the unfused roundings elsewhere;
* opt-in FP8 (``fp8=True``): the blocks' GEMMs (stacked q/k/v, output projections, both SwiGLU MLPs) are FLUX's
  ``Fp8Linear`` (e4m3 weights, per-output-feature scales; ``quantize_fp8_state_dict`` converts them and gives the
  bias-less ones a zero bias).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops as _ops  # noqa: F401  (registers torch.ops.ditserve.*)
from .flux_transformer import Fp8Linear, MLPEmbedder, fuse_diffusers_state_dict, timestep_sinusoid


class HeadRMSNorm(nn.Module):
    """MochiRMSNorm(head_dim, eps, elementwise_affine=True)'s parameters; rms_rope_per_head applies it."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))


def _gemm(fp8: bool, in_features: int, out_features: int, bias: bool) -> nn.Module:
    return Fp8Linear(in_features, out_features) if fp8 else nn.Linear(in_features, out_features, bias=bias)


class SwiGLUProj(nn.Module):
    def __init__(self, dim: int, inner: int, fp8: bool = False):
        super().__init__()
        self.proj = _gemm(fp8, dim, 2 * inner, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.ditserve.swiglu(self.proj(x))


class FeedForward(nn.Module):
    """diffusers FeedForward(activation_fn="swiglu", bias=False): net.0 (SwiGLU), net.1 (dropout), net.2."""

    def __init__(self, dim: int, inner: int, fp8: bool = False):
        super().__init__()
        self.net = nn.ModuleList([SwiGLUProj(dim, inner, fp8), nn.Dropout(0.0), _gemm(fp8, inner, dim, False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class Linear(nn.Module):
    """Holds ``linear`` (MochiRMSNormZero's modulation projection); the engine computes it in conditioning."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.linear(s)


class ContinuousNorm(nn.Module):
    """MochiLayerNormContinuous's projection (the last block's text norm)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.linear_1(s)


class MochiAttention(nn.Module):
    """Joint attention over [video, text]: each stream's to_q/to_k/to_v stacked into one GEMM (FUSED_PROJECTIONS),
    q/k head RMSNorms and the video tokens' per-head RoPE as one ditserve op per q and k that writes both streams'
    heads in the [B, S, H, D] layout attention reads (and returns its output in)."""

    def __init__(self, dim: int, pdim: int, heads: int, head_dim: int, context_pre_only: bool, fp8: bool = False):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.inner = inner
        self.fp8 = fp8
        self.context_pre_only = context_pre_only
        self.norm_q = HeadRMSNorm(head_dim, 1e-5)
        self.norm_k = HeadRMSNorm(head_dim, 1e-5)
        self.norm_added_q = HeadRMSNorm(head_dim, 1e-5)
        self.norm_added_k = HeadRMSNorm(head_dim, 1e-5)
        self.to_qkv = _gemm(fp8, dim, 3 * inner, False)
        self.add_qkv_proj = _gemm(fp8, pdim, 3 * inner, False)
        self.to_out = nn.ModuleList([_gemm(fp8, inner, dim, True), nn.Dropout(0.0)])
        self.to_add_out = _gemm(fp8, inner, pdim, True) if not context_pre_only else nn.Identity()

    def forward(self, x: torch.Tensor, txt: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        n = self.inner
        b, s = x.shape[0], x.shape[1]
        tqkv = self.add_qkv_proj(txt)
        if self.fp8:
            vqkv = self.to_qkv(x)
            v = torch.cat([vqkv[:, :, 2 * n:], tqkv[:, :, 2 * n:]], dim=1)
        else:
            # Each sample's video q/k/v GEMM writes its rows of one [video, text] buffer (the text rows are copied
            # in: 256 of them), so v is a view of it, not a concatenated copy of both CFG branches' values.
            vqkv = torch.empty([b, s + txt.shape[1], 3 * n], dtype=x.dtype, device=x.device)
            for i in range(b):
                torch.mm(x[i], self.to_qkv.weight.t(), out=vqkv[i, :s])
            vqkv[:, s:] = tqkv
            tqkv = vqkv[:, s:]
            v = vqkv[:, :, 2 * n:]
        # every q/k norm has eps 1e-5
        q = torch.ops.ditserve.rms_rope_per_head(vqkv[:, :s, :n], self.norm_q.weight, cos, sin, self.norm_q.eps,
                                                 tqkv[:, :, :n], self.norm_added_q.weight)
        k = torch.ops.ditserve.rms_rope_per_head(vqkv[:, :s, n:2 * n], self.norm_k.weight, cos, sin,
                                                 self.norm_k.eps, tqkv[:, :, n:2 * n], self.norm_added_k.weight)
        o = torch.ops.ditserve.attention(q, k, v.unflatten(2, (self.heads, -1)).transpose(1, 2), key_mask)
        o = o.transpose(1, 2).flatten(2, 3).to(x.dtype)
        if self.fp8:
            out = self.to_out[0](o[:, :s])
        else:
            # per sample: each one's video rows of o are contiguous (the batch's are not: a linear over o[:, :s]
            # would copy them first)
            w, bias = self.to_out[0].weight, self.to_out[0].bias
            out = torch.empty([b, s, w.shape[0]], dtype=o.dtype, device=o.device)
            for i in range(b):
                torch.addmm(bias, o[i, :s], w.t(), out=out[i])
        txt_out = self.to_add_out(o[:, s:])
        return out, txt_out


# fused parameter -> the diffusers parameters whose output rows it stacks (fuse_diffusers_state_dict)
FUSED_PROJECTIONS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "transformer_blocks": {"attn1.to_qkv": ("attn1.to_q", "attn1.to_k", "attn1.to_v"),
                           "attn1.add_qkv_proj": ("attn1.add_q_proj", "attn1.add_k_proj", "attn1.add_v_proj")},
}


def from_diffusers_state_dict(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """diffusers MochiTransformer3DModel state dict -> MochiTransformer's (in place: q/k/v stacked)."""
    return fuse_diffusers_state_dict(sd, FUSED_PROJECTIONS)


class MochiBlock(nn.Module):
    def __init__(self, dim: int, pdim: int, heads: int, head_dim: int, context_pre_only: bool, eps: float = 1e-6,
                 fp8: bool = False):
        super().__init__()
        self.context_pre_only = context_pre_only
        self.eps = eps
        self.dim = dim
        self.pdim = pdim
        self.norm1 = Linear(dim, 4 * dim)
        self.norm1_context = ContinuousNorm(dim, pdim) if context_pre_only else Linear(dim, 4 * pdim)
        self.attn1 = MochiAttention(dim, pdim, heads, head_dim, context_pre_only, fp8)
        self.ff = FeedForward(dim, (4 * dim * 2) // 3, fp8)
        self.ff_context = FeedForward(pdim, (4 * pdim * 2) // 3, fp8) if not context_pre_only else nn.Identity()

    def mod_width(self) -> int:
        return 4 * self.dim + (self.pdim if self.context_pre_only else 4 * self.pdim)

    def forward(self, x: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        # MochiRMSNormZero / MochiModulatedRMSNorm as the rms_scale op: rms(x) * scale in float32, rounded to the
        # stream's dtype, plus the residual stream where the block adds it (scale [B, D] float32)
        d, p, eps = self.dim, self.pdim, self.eps
        scale_msa, gate_msa = mod[:, :d], mod[:, d:2 * d]
        scale_mlp, gate_mlp = mod[:, 2 * d:3 * d], mod[:, 3 * d:4 * d]
        c = mod[:, 4 * d:]
        nx = torch.ops.ditserve.rms_scale(x, 1 + scale_msa.to(torch.float32), eps)
        ntxt = torch.ops.ditserve.rms_scale(txt, 1 + c[:, :p].to(torch.float32), eps)
        a, ta = self.attn1(nx, ntxt, cos, sin, key_mask)
        x = torch.ops.ditserve.rms_scale(a, torch.tanh(gate_msa).to(torch.float32), eps, x)
        h = self.ff(torch.ops.ditserve.rms_scale(x, 1 + scale_mlp.to(torch.float32), eps))
        x = torch.ops.ditserve.rms_scale(h, torch.tanh(gate_mlp).to(torch.float32), eps, x)
        if not self.context_pre_only:
            txt = torch.ops.ditserve.rms_scale(ta, torch.tanh(c[:, p:2 * p]).to(torch.float32), eps, txt)
            h = self.ff_context(torch.ops.ditserve.rms_scale(txt, 1 + c[:, 2 * p:3 * p].to(torch.float32), eps))
            txt = torch.ops.ditserve.rms_scale(h, torch.tanh(c[:, 3 * p:]).to(torch.float32), eps, txt)
        return x, txt


class AttentionPool(nn.Module):
    """diffusers MochiAttentionPool (masked mean token as the query over [mean, tokens])."""

    def __init__(self, heads: int, embed_dim: int, out_dim: int):
        super().__init__()
        self.heads = heads
        self.to_kv = nn.Linear(embed_dim, 2 * embed_dim)
        self.to_q = nn.Linear(embed_dim, embed_dim)
        self.to_out = nn.Linear(embed_dim, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        d = x.shape[2]
        attn_mask = F.pad(mask[:, None, None, :].to(torch.bool), (1, 0), value=True)
        w = mask[:, :, None].to(x.dtype)
        w = w / w.sum(dim=1, keepdim=True).clamp(min=1)
        pooled = (x * w).sum(dim=1, keepdim=True)
        x = torch.cat([pooled, x], dim=1)
        hd = d // self.heads
        kv = self.to_kv(x).unflatten(2, (2, self.heads, hd)).transpose(1, 3)
        k, v = kv.unbind(2)
        q = self.to_q(x[:, 0]).unflatten(1, (self.heads, hd)).unsqueeze(2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0)
        return self.to_out(o.squeeze(2).flatten(1, 2))


class TimeEmbed(nn.Module):
    """MochiCombinedTimestepCaptionEmbedding's parameters (timestep_embedder, pooler, caption_proj)."""

    def __init__(self, dim: int, pdim: int, text_dim: int, time_dim: int):
        super().__init__()
        self.time_dim = time_dim
        self.timestep_embedder = MLPEmbedder(time_dim, dim)
        self.pooler = AttentionPool(8, text_dim, dim)
        self.caption_proj = nn.Linear(text_dim, pdim)


class PatchEmbed(nn.Module):
    def __init__(self, p: int, cin: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, kernel_size=p, stride=p)


class NormOut(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)


class MochiTransformer(nn.Module):
    def __init__(self, patch_size: int = 2, num_attention_heads: int = 24, attention_head_dim: int = 128,
                 num_layers: int = 48, pooled_projection_dim: int = 1536, in_channels: int = 12,
                 out_channels: Optional[int] = None, text_embed_dim: int = 4096, time_embed_dim: int = 256,
                 fp8: bool = False):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        out_channels = out_channels or in_channels
        self.patch_size = patch_size
        self.inner_dim = dim
        self.num_layers = num_layers
        self.patch_embed = PatchEmbed(patch_size, in_channels, dim)
        self.time_embed = TimeEmbed(dim, pooled_projection_dim, text_embed_dim, time_embed_dim)
        self.pos_frequencies = nn.Parameter(torch.zeros(3, num_attention_heads, attention_head_dim // 2))
        self.transformer_blocks = nn.ModuleList([
            MochiBlock(dim, pooled_projection_dim, num_attention_heads, attention_head_dim, i == num_layers - 1,
                       fp8=fp8)
            for i in range(num_layers)])
        self.norm_out = NormOut(dim)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * out_channels)
        offsets: List[int] = []
        o = 0
        for blk in self.transformer_blocks:
            offsets.append(o)
            o += blk.mod_width()
        offsets.append(o)
        self.mod_offsets = offsets  # block i's modulation: [offsets[i], offsets[i + 1]); norm_out's after

    @classmethod
    def from_diffusers_config(cls, cfg, fp8: bool = False) -> "MochiTransformer":
        keys = ("patch_size", "num_attention_heads", "attention_head_dim", "num_layers", "pooled_projection_dim",
                "in_channels", "out_channels", "text_embed_dim", "time_embed_dim")
        for k, want in (("qk_norm", "rms_norm"), ("activation_fn", "swiglu")):
            if cfg.get(k, want) != want:
                raise ValueError(f"MochiTransformer3DModel with {k}={cfg.get(k)!r} is not supported (need {want!r})")
        return cls(**{k: cfg[k] for k in keys if k in cfg}, fp8=fp8)

    @torch.jit.export
    def rope(self, num_frames: int, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """diffusers MochiRoPE for a (frames, height, width) grid of patches: float32 cos, sin [T*H*W, heads,
        head_dim/2], tokens frame-major as the patch embedding orders them."""
        dev = self.pos_frequencies.device
        scale = (192.0 * 192.0 / float(height * width)) ** 0.5
        t = torch.arange(num_frames, device=dev, dtype=torch.float32)
        eh = torch.linspace(-height * scale / 2, height * scale / 2, height + 1, device=dev, dtype=torch.float32)
        ew = torch.linspace(-width * scale / 2, width * scale / 2, width + 1, device=dev, dtype=torch.float32)
        h = (eh[:-1] + eh[1:]) / 2
        w = (ew[:-1] + ew[1:]) / 2
        gt, gh, gw = torch.meshgrid([t, h, w], indexing="ij")
        pos = torch.stack([gt, gh, gw], dim=-1).view(-1, 3)
        freqs = torch.einsum("nd,dhf->nhf", pos, self.pos_frequencies.to(torch.float32))
        return torch.cos(freqs), torch.sin(freqs)

    @torch.jit.export
    def conditioning(self, timesteps: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """timesteps [n] (the transformer's timestep, in the model dtype), text [B, L, text_dim] (encoder output),
        mask [B, L] -> [n, B, mod_dim]: every block's and the final norm's modulation at every step (silu(temb)
        through each projection, as diffusers computes them per call)."""
        n = timesteps.shape[0]
        b = text.shape[0]
        te = self.time_embed
        pooled = te.pooler(text, mask)                                          # [B, dim]
        t = timestep_sinusoid(timesteps.repeat_interleave(b), te.time_dim).to(text.dtype)
        temb = te.timestep_embedder(t) + pooled.repeat(n, 1)                    # step-major rows
        s = F.silu(temb)
        mods: List[torch.Tensor] = []
        for blk in self.transformer_blocks:
            mods.append(blk.norm1(s))
            mods.append(blk.norm1_context(s))
        mods.append(self.norm_out.linear(s))
        return torch.cat(mods, dim=1).view(n, b, -1)

    @torch.jit.export
    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.time_embed.caption_proj(text)

    @torch.jit.export
    def embed_video(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> [B, T * H/p * W/p, dim] (frame-major, rows, columns)."""
        b = latents.shape[0]
        x = latents.permute(0, 2, 1, 3, 4).flatten(0, 1)
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        return x.unflatten(0, (b, -1)).flatten(1, 2)

    @torch.jit.export
    def blocks(self, start: int, end: int, x: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor, key_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """mod [B, mod_dim]: this step's row of conditioning()."""
        for i, blk in enumerate(self.transformer_blocks):
            if i >= start and i < end:
                x, txt = blk(x, txt, mod[:, self.mod_offsets[i]:self.mod_offsets[i + 1]], cos, sin, key_mask)
        return x, txt

    @torch.jit.export
    def head(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        """AdaLayerNormContinuous (layer norm, eps 1e-6, scale then shift) + proj_out: [B, S, p*p*C] tokens."""
        d = self.inner_dim
        m = mod[:, self.mod_offsets[self.num_layers]:]
        scale, shift = m[:, :d], m[:, d:2 * d]
        x = F.layer_norm(x, [d], None, None, 1e-6) * (1 + scale)[:, None, :] + shift[:, None, :]
        return self.proj_out(x)

    def forward(self, latents: torch.Tensor, text: torch.Tensor, timestep: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """diffusers' transformer call for one timestep (all samples at the same t): -> [B, C, T, H, W]."""
        b, _, t, hh, ww = latents.shape
        p = self.patch_size
        mod = self.conditioning(timestep[:1], text, mask)[0]
        cos, sin = self.rope(t, hh // p, ww // p)
        keys = torch.cat([torch.ones(b, t * (hh // p) * (ww // p), dtype=torch.bool, device=latents.device),
                          mask.to(torch.bool)], dim=1)
        x, txt = self.blocks(0, self.num_layers, self.embed_video(latents), self.embed_text(text), mod, cos, sin,
                             keys)
        out = self.head(x, mod)
        out = out.reshape(b, t, hh // p, ww // p, p, p, -1).permute(0, 6, 1, 2, 4, 3, 5)
        return out.reshape(b, -1, t, hh, ww)
