"""Python-side definition of the engine's attention operator.

The C++ engine registers the same schema under ``TORCH_LIBRARY(ditserve, m)`` when it loads a model;
this module provides a reference implementation so that scripting, tracing and the Python checks can
run the exported modules.  Import it before ``torch.jit.script``/``torch.jit.load`` of transformer.pt.
"""
from typing import Optional

import torch
import torch.nn.functional as F

SCHEMA = "attention(Tensor q, Tensor k, Tensor v, Tensor? key_mask=None) -> Tensor"


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """q/k/v [B, H, S, D]; key_mask bool [B, S_k] (True = attend) or None."""
    mask = None
    if key_mask is not None:
        mask = key_mask.to(torch.bool)[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)


def _meta_impl(q, k, v, key_mask=None):
    return torch.empty_like(q)


def _already_defined() -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw("ditserve::attention", "")
        return True
    except RuntimeError:
        return False


_lib = None
if not _already_defined():
    _lib = torch.library.Library("ditserve", "DEF")
    _lib.define(SCHEMA)
    _lib.impl("attention", attention_reference, "CPU")
    _lib.impl("attention", attention_reference, "CUDA")
    _lib.impl("attention", _meta_impl, "Meta")
