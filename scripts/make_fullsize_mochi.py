#!/usr/bin/env python3
"""Write a Mochi-1 pipeline directory at the released configs (genmo/mochi-1-preview: 10.0B-parameter
MochiTransformer3DModel, T5-v1.1-XXL encoder, AutoencoderKLMochi) with random bf16 weights, in the layout
MochiPipeline.save_pretrained writes. For benchmarks without downloading weights; the tokenizer is the small
trained one (ids stay in range). Weights are initialised on --device (cuda: seconds) in bf16, never fp32.

  make_fullsize_mochi.py --out DIR [--device cuda]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ditserve_export.fullsize import fullsize_t5_encoder, parse_args, small_t5_spiece, write_pipeline  # noqa: E402


def main() -> int:
    a = parse_args(__doc__)
    from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel
    from transformers import T5TokenizerFast

    def build(tmp: str):
        tokenizer = T5TokenizerFast(vocab_file=small_t5_spiece(tmp), add_prefix_space=True, model_max_length=256)
        text_encoder = fullsize_t5_encoder()
        vae = AutoencoderKLMochi().eval()  # the released config is diffusers' default
        transformer = MochiTransformer3DModel().eval()
        with torch.no_grad():  # diffusers initialises the learned RoPE frequencies to zero
            transformer.pos_frequencies.normal_(0, 0.02)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                                    invert_sigmas=True)
        return MochiPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                             transformer=transformer, force_zeros_for_empty_prompt=True)

    return write_pipeline(a, torch.bfloat16, build)


if __name__ == "__main__":
    sys.exit(main())
