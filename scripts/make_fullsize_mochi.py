#!/usr/bin/env python3
"""Write a Mochi-1 pipeline directory at the released configs (genmo/mochi-1-preview: 10.0B-parameter
MochiTransformer3DModel, T5-v1.1-XXL encoder, AutoencoderKLMochi) with random bf16 weights, in the layout
MochiPipeline.save_pretrained writes. For benchmarks without downloading weights; the tokenizer is the small
trained one (ids stay in range). Weights are initialised on --device (cuda: seconds) in bf16, never fp32.

  make_fullsize_mochi.py --out DIR [--device cuda]
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ditserve_export.fullsize_t5 import fullsize_t5_encoder, small_t5_spiece  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu", help="where to initialise the random weights")
    a = p.parse_args()
    from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel
    from transformers import T5TokenizerFast

    t0 = time.time()
    torch.set_default_dtype(torch.bfloat16)
    torch.manual_seed(0)
    torch.set_default_device(a.device)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = T5TokenizerFast(vocab_file=small_t5_spiece(tmp), add_prefix_space=True, model_max_length=256)
        text_encoder = fullsize_t5_encoder()
        vae = AutoencoderKLMochi().eval()  # the released config is diffusers' default
        transformer = MochiTransformer3DModel().eval()
        with torch.no_grad():  # diffusers initialises the learned RoPE frequencies to zero
            transformer.pos_frequencies.normal_(0, 0.02)
        print(f"built in {time.time() - t0:.1f}s; transformer params "
              f"{sum(x.numel() for x in transformer.parameters()) / 1e9:.2f}B", flush=True)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                                    invert_sigmas=True)
        pipe = MochiPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                             transformer=transformer, force_zeros_for_empty_prompt=True)
        pipe.save_pretrained(a.out, max_shard_size="10GB")
    print(f"wrote {a.out} in {time.time() - t0:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
