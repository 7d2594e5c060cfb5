"""ditserve's TorchScript-able HunyuanVideo transformer (diffusers 0.34 ``HunyuanVideoTransformer3DModel``, T2V).

HunyuanVideo's 20 dual-stream and 40 single-stream blocks are FLUX's blocks (same diffusers classes, parameter
names and math), so this model reuses ``FluxTransformer``'s blocks, fused projections, ditserve ops and piecewise
methods (``double_blocks`` / ``single_blocks`` / ``head``, the First Block Cache split), and its opt-in FP8 block
GEMMs (``fp8=True``: the same ``Fp8Linear`` layers and ``quantize_fp8_state_dict``). What differs:

* ``embed_image``: the (1, 2, 2) Conv3d patch embedding of the latent video [B, C, F, H, W] -> tokens [B, N, D];
  ``head`` returns the patch tokens [B, N, p_t*p*p*C] (the caller unpatchifies).
* ``embed_text``: the token refiner (2 blocks of self-attention over the prompt, with diffusers' query-and-key
  padding mask) conditioned on the step's timestep, so it runs per step; the pipeline runs it for all steps
  of a request at once (``embed_text(hidden, mask, timesteps [T])`` -> [T, B, L, D]). Its attention is plain SDPA:
  it runs on the whole prompt on every rank, never on a sequence shard.
* ``conditioning``: temb = (timestep + pooled CLIP) + embedded guidance, diffusers' order of additions; the
  guidance is the pipeline's guidance_scale * 1000 (HunyuanVideo-T2V has guidance_embeds).
* token order: the blocks see [text, video] (FLUX's order) where diffusers concatenates [video, text]; attention
  does not depend on key order (only its float summation order does) and RoPE on the text rows is the identity
  (cos 1, sin 0), which is what diffusers' "rotate the video tokens only" computes.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .flux_transformer import FluxTransformer, MLPEmbedder, timestep_sinusoid


class PatchEmbed(nn.Module):
    def __init__(self, patch: Tuple[int, int, int], in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class LinearSiluProj(nn.Module):
    """diffusers LinearActivation(activation="silu"): silu(proj(x))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.proj(x))


class RefinerFeedForward(nn.Module):
    def __init__(self, dim: int, mult: float):
        super().__init__()
        hidden = int(dim * mult)
        self.net = nn.ModuleList([LinearSiluProj(dim, hidden), nn.Dropout(0.0), nn.Linear(hidden, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class RefinerAttention(nn.Module):
    """diffusers Attention(bias=True), no q/k norm, SDPA with a boolean [B, 1, S, S] mask."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, heads * head_dim)
        self.to_k = nn.Linear(dim, heads * head_dim)
        self.to_v = nn.Linear(dim, heads * head_dim)
        self.to_out = nn.ModuleList([nn.Linear(heads * head_dim, dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.to_q(x).view(b, s, self.heads, -1).transpose(1, 2)
        k = self.to_k(x).view(b, s, self.heads, -1).transpose(1, 2)
        v = self.to_v(x).view(b, s, self.heads, -1).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        o = o.transpose(1, 2).reshape(b, s, -1).to(q.dtype)
        return self.to_out[0](o)


class AdaGates(nn.Module):
    """diffusers HunyuanVideoAdaNorm: (gate_msa, gate_mlp) = linear(silu(temb)).chunk(2)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, temb: torch.Tensor) -> List[torch.Tensor]:
        return self.linear(F.silu(temb)).chunk(2, dim=1)


class RefinerBlock(nn.Module):
    def __init__(self, heads: int, head_dim: int, mlp_ratio: float):
        super().__init__()
        dim = heads * head_dim
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=True, eps=1e-6)
        self.attn = RefinerAttention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=True, eps=1e-6)
        self.ff = RefinerFeedForward(dim, mlp_ratio)
        self.norm_out = AdaGates(dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        a = self.attn(self.norm1(x), mask)
        gates = self.norm_out(temb)
        x = x + a * gates[0].unsqueeze(1)
        return x + self.ff(self.norm2(x)) * gates[1].unsqueeze(1)


class Refiner(nn.Module):
    """diffusers HunyuanVideoIndividualTokenRefiner: ``refiner_blocks``."""

    def __init__(self, heads: int, head_dim: int, layers: int, mlp_ratio: float):
        super().__init__()
        self.refiner_blocks = nn.ModuleList([RefinerBlock(heads, head_dim, mlp_ratio) for _ in range(layers)])

    def forward(self, x: torch.Tensor, temb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, s = mask.shape
        m = mask.to(torch.bool).view(b, 1, 1, s).repeat(1, 1, s, 1)
        m = m & m.transpose(2, 3)
        m[:, :, :, 0] = True  # padded queries attend to the first token (diffusers; keeps their softmax finite)
        for blk in self.refiner_blocks:
            x = blk(x, temb, m)
        return x


class TimestepTextEmbed(nn.Module):
    """diffusers CombinedTimestepTextProjEmbeddings: MLP(sinusoid(t)) + MLP(pooled)."""

    def __init__(self, dim: int, pooled_dim: int):
        super().__init__()
        self.timestep_embedder = MLPEmbedder(256, dim)
        self.text_embedder = MLPEmbedder(pooled_dim, dim)

    def forward(self, t: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.timestep_embedder(timestep_sinusoid(t).to(pooled.dtype)) + self.text_embedder(pooled)


class TokenRefiner(nn.Module):
    """diffusers HunyuanVideoTokenRefiner."""

    def __init__(self, in_channels: int, heads: int, head_dim: int, layers: int, mlp_ratio: float = 4.0):
        super().__init__()
        dim = heads * head_dim
        self.time_text_embed = TimestepTextEmbed(dim, in_channels)
        self.proj_in = nn.Linear(in_channels, dim)
        self.token_refiner = Refiner(heads, head_dim, layers, mlp_ratio)

    def forward(self, hidden: torch.Tensor, timestep: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask_f = mask.float().unsqueeze(-1)
        pooled = ((hidden * mask_f).sum(dim=1) / mask_f.sum(dim=1)).to(hidden.dtype)
        temb = self.time_text_embed(timestep, pooled)
        return self.token_refiner(self.proj_in(hidden), temb, mask)


class ConditionEmbed(nn.Module):
    """diffusers HunyuanVideoConditionEmbedding (T2V): (MLP(sinusoid(t)) + MLP(pooled)) [+ MLP(sinusoid(g))]."""

    def __init__(self, dim: int, pooled_dim: int, guidance_embeds: bool):
        super().__init__()
        self.timestep_embedder = MLPEmbedder(256, dim)
        self.text_embedder = MLPEmbedder(pooled_dim, dim)
        self.guidance_embedder = MLPEmbedder(256, dim) if guidance_embeds else None

    def forward(self, t: torch.Tensor, guidance: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        c = self.timestep_embedder(timestep_sinusoid(t).to(pooled.dtype)) + self.text_embedder(pooled)
        if self.guidance_embedder is not None:
            c = c + self.guidance_embedder(timestep_sinusoid(guidance).to(pooled.dtype))
        return c


class HunyuanVideoTransformer(FluxTransformer):
    def __init__(self, in_channels: int = 16, out_channels: int = 16, num_attention_heads: int = 24,
                 attention_head_dim: int = 128, num_layers: int = 20, num_single_layers: int = 40,
                 num_refiner_layers: int = 2, mlp_ratio: float = 4.0, patch_size: int = 2, patch_size_t: int = 1,
                 guidance_embeds: bool = True, text_embed_dim: int = 4096, pooled_projection_dim: int = 768,
                 rope_axes_dim: Sequence[int] = (16, 56, 56), fp8: bool = False):
        if mlp_ratio != 4.0:
            raise ValueError(f"mlp_ratio {mlp_ratio}: only 4.0 (the blocks are FLUX's) is supported")
        patch_dim = patch_size_t * patch_size * patch_size * out_channels
        super().__init__(in_channels=patch_dim, out_channels=patch_dim, num_layers=num_layers,
                         num_single_layers=num_single_layers, attention_head_dim=attention_head_dim,
                         num_attention_heads=num_attention_heads, joint_attention_dim=text_embed_dim,
                         pooled_projection_dim=pooled_projection_dim, guidance_embeds=False,
                         axes_dims_rope=tuple(rope_axes_dim), patch_size=1, fp8=fp8)
        dim = self.inner_dim
        self.x_embedder = PatchEmbed((patch_size_t, patch_size, patch_size), in_channels, dim)
        self.context_embedder = TokenRefiner(text_embed_dim, num_attention_heads, attention_head_dim,
                                             num_refiner_layers)
        self.time_text_embed = ConditionEmbed(dim, pooled_projection_dim, guidance_embeds)

    @classmethod
    def from_diffusers_config(cls, cfg: Dict, fp8: bool = False) -> "HunyuanVideoTransformer":
        if cfg.get("image_condition_type") is not None:
            raise ValueError(f"image_condition_type={cfg['image_condition_type']!r} (image-to-video) is not "
                             "supported; only text-to-video checkpoints")
        if cfg.get("qk_norm", "rms_norm") != "rms_norm":
            raise ValueError(f"qk_norm={cfg['qk_norm']!r}: only rms_norm is supported")
        return cls(in_channels=cfg.get("in_channels", 16), out_channels=cfg.get("out_channels") or
                   cfg.get("in_channels", 16), num_attention_heads=cfg.get("num_attention_heads", 24),
                   attention_head_dim=cfg.get("attention_head_dim", 128), num_layers=cfg.get("num_layers", 20),
                   num_single_layers=cfg.get("num_single_layers", 40),
                   num_refiner_layers=cfg.get("num_refiner_layers", 2), mlp_ratio=cfg.get("mlp_ratio", 4.0),
                   patch_size=cfg.get("patch_size", 2), patch_size_t=cfg.get("patch_size_t", 1),
                   guidance_embeds=bool(cfg.get("guidance_embeds", True)),
                   text_embed_dim=cfg.get("text_embed_dim", 4096),
                   pooled_projection_dim=cfg.get("pooled_projection_dim", 768),
                   rope_axes_dim=tuple(cfg.get("rope_axes_dim", (16, 56, 56))), fp8=fp8)

    @torch.jit.export
    def conditioning(self, pooled_projections: torch.Tensor, timestep: torch.Tensor, guidance: torch.Tensor
                     ) -> torch.Tensor:
        """pooled [B, P], timestep [T, B] (the scheduler's, 0..1000), guidance [B] (scale * 1000) ->
        [T, B, mod_dim]: FluxTransformer.conditioning's layout (every block's adaLN rows, then the head's)."""
        steps = timestep.shape[0]
        batch = timestep.shape[1]
        temb = self.time_text_embed(timestep.reshape(-1), guidance.repeat(steps),
                                    pooled_projections.repeat(steps, 1))
        return self.modulations(F.silu(temb), steps, batch)

    @torch.jit.export
    def embed_image(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """latents [B, C, F, H, W] (any dtype) -> tokens [B, F*(H/p)*(W/p), D] in (frame, row, column) order."""
        return self.x_embedder(hidden_states.to(self.proj_out.weight.dtype))

    @torch.jit.export
    def embed_text(self, encoder_hidden_states: torch.Tensor, mask: torch.Tensor, timestep: torch.Tensor
                   ) -> torch.Tensor:
        """Llama hidden [B, L, E], mask [B, L], timestep [T, B] -> refined text [T, B, L, D], one per step."""
        outs = []
        for i in range(timestep.shape[0]):
            outs.append(self.context_embedder(encoder_hidden_states, timestep[i], mask))
        return torch.stack(outs, dim=0)

    @torch.jit.export
    def step(self, hidden_states: torch.Tensor, txt: torch.Tensor, mod: torch.Tensor, cos: torch.Tensor,
             sin: torch.Tensor) -> torch.Tensor:
        """One evaluation on unsharded tokens without a text mask (benchmarks): latents [B, C, F, H, W],
        txt a row of embed_text, mod a row of conditioning -> patch tokens [B, N, p_t*p*p*C]."""
        img = self.embed_image(hidden_states)
        img, txt = self.double_blocks(0, self.num_layers, img, txt, mod, cos, sin, None)
        img, txt = self.single_blocks(0, self.num_single_layers, img, txt, mod, cos, sin, None)
        return self.head(img, mod)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                pooled_projections: torch.Tensor, timestep: torch.Tensor, guidance: torch.Tensor,
                cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        mod = self.conditioning(pooled_projections, timestep.unsqueeze(0), guidance)[0]
        mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.long, device=encoder_hidden_states.device)
        txt = self.embed_text(encoder_hidden_states, mask, timestep.unsqueeze(0))[0]
        return self.step(hidden_states, txt, mod, cos, sin)
