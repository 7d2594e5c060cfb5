"""Python-side definitions of the engine's custom operators (``torch.ops.ditserve.*``).

The C++ engine registers the same schemas (``TORCH_LIBRARY(ditserve, m)`` and fragments) when it loads a
model; this module provides reference implementations with single-rank semantics so that scripting,
tracing and the Python checks can run the exported modules.  Import it before ``torch.jit.script`` /
``torch.jit.trace`` / ``torch.jit.load`` of any exported module.

  attention          transformer attention (engine: SDPA, or Ulysses / ring under context parallelism)
  halo_conv2d        stride-1 conv2d (engine: exchanges halo rows when the decoder is split by rows)
  group_norm         F.group_norm (engine: statistics all-reduced over the row-split ranks)
  spatial_attention  SDPA over all spatial tokens (engine: keys/values all-gathered over the ranks)
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


def group_norm_reference(x: torch.Tensor, num_groups: int, weight: Optional[torch.Tensor],
                         bias: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """F.group_norm over [B, C, *spatial]."""
    return F.group_norm(x, num_groups, weight, bias, eps)


def spatial_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked SDPA; q/k/v [B, H, S, D] with S the spatial tokens (rows first)."""
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)


def _same_as_q(q, *args):
    return torch.empty_like(q)


def _halo_conv2d_meta(x, weight, bias, padding):
    h = x.shape[-2] + 2 * padding[0] - weight.shape[-2] + 1
    w = x.shape[-1] + 2 * padding[1] - weight.shape[-1] + 1
    return x.new_empty((x.shape[0], weight.shape[0], h, w))


# name -> (schema, reference, meta)
OPS = {
    "attention": ("attention(Tensor q, Tensor k, Tensor v, Tensor? key_mask=None) -> Tensor",
                  attention_reference, _same_as_q),
    "halo_conv2d": ("halo_conv2d(Tensor x, Tensor weight, Tensor? bias, int[2] padding) -> Tensor",
                    halo_conv2d_reference, _halo_conv2d_meta),
    "group_norm": ("group_norm(Tensor x, int num_groups, Tensor? weight, Tensor? bias, float eps) -> Tensor",
                   group_norm_reference, _same_as_q),
    "spatial_attention": ("spatial_attention(Tensor q, Tensor k, Tensor v) -> Tensor",
                          spatial_attention_reference, _same_as_q),
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
