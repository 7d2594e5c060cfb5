"""Random-weight pipelines at the released configs, for GPU benchmarks without downloading weights: the shared
writer of scripts/make_fullsize_<family>.py and the T5-v1.1-XXL encoder of the video pipelines (Mochi-1,
CogVideoX). Tokenizers are small trained ones in the real layouts, whose ids stay inside the encoders' vocabularies."""
import argparse
import os
import tempfile
import time
from typing import Callable

import torch

from .tiny_tokenizers import DEFAULT_CORPUS, build_t5_spm


def fullsize_t5_encoder():
    """T5EncoderModel at google/t5-v1_1-xxl's encoder config (4.76B parameters), in the default dtype/device."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False,
        pad_token_id=0, eos_token_id=1)).eval()


def small_t5_spiece(tmp_dir: str) -> str:
    """A SentencePiece model trained on the test corpus, written under tmp_dir; returns its path."""
    return build_t5_spm(os.path.join(tmp_dir, "t5"), DEFAULT_CORPUS)


def write_pipeline(a: argparse.Namespace, dtype: torch.dtype, build: Callable[[str], object]) -> int:
    """build(tmp_dir) -> a diffusers pipeline, its weights initialised in dtype on a.device (cuda: seconds, and
    never an fp32 copy), saved to a.out in 10 GB shards. Prints the transformer's size and the times."""
    t0 = time.time()
    torch.set_default_dtype(dtype)
    torch.manual_seed(0)
    torch.set_default_device(a.device)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build(tmp)
        print(f"built in {time.time() - t0:.1f}s; transformer params "
              f"{sum(x.numel() for x in pipe.transformer.parameters()) / 1e9:.2f}B", flush=True)
        pipe.save_pretrained(a.out, max_shard_size="10GB")
    print(f"wrote {a.out} in {time.time() - t0:.1f}s", flush=True)
    return 0


def parse_args(doc: str, **extra) -> argparse.Namespace:
    """--out DIR, --device (where the random weights are made), plus extra {flag: add_argument kwargs}."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu", help="where to initialise the random weights")
    for flag, kw in extra.items():
        p.add_argument(flag, **kw)
    return p.parse_args()
