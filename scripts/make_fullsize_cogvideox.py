#!/usr/bin/env python3
"""Write a CogVideoX pipeline directory at a released config (THUDM/CogVideoX-2b, -5b or CogVideoX1.5-5B:
CogVideoXTransformer3DModel, T5-v1.1-XXL encoder, AutoencoderKLCogVideoX, the checkpoint's scheduler) with random
weights, in the layout CogVideoXPipeline.save_pretrained writes. For benchmarks without downloading weights; the
tokenizer is the small trained one (ids stay in range). Weights are initialised on --device (cuda: seconds) in the
variant's dtype (2b float16, 5b / 1.5 bfloat16), never fp32.

  make_fullsize_cogvideox.py --variant 5b|1.5|2b --out DIR [--device cuda]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ditserve_export.cogvideox_tiny import released_scheduler  # noqa: E402
from ditserve_export.fullsize import fullsize_t5_encoder, parse_args, small_t5_spiece, write_pipeline  # noqa: E402

# What the released checkpoints' configs set beyond diffusers' defaults.
TRANSFORMER = {
    "2b": dict(num_attention_heads=30, num_layers=30),
    "5b": dict(num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True),
    "1.5": dict(num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True, patch_size_t=2,
                patch_bias=False, sample_height=300, sample_width=300, sample_frames=81),
}
VAE = {"2b": dict(scaling_factor=1.15258426), "5b": dict(scaling_factor=0.7),
       "1.5": dict(scaling_factor=0.7, sample_height=768, sample_width=1360, invert_scale_latents=True)}
SCHEDULER = {"2b": ("CogVideoXDDIMScheduler", 3.0), "5b": ("CogVideoXDPMScheduler", 1.0),
             "1.5": ("CogVideoXDPMScheduler", 1.0)}


def main() -> int:
    a = parse_args(__doc__, **{"--variant": dict(choices=sorted(TRANSFORMER), default="5b")})
    from diffusers import AutoencoderKLCogVideoX, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Tokenizer

    def build(tmp: str):
        tokenizer = T5Tokenizer(vocab_file=small_t5_spiece(tmp), model_max_length=226, legacy=True)
        return CogVideoXPipeline(tokenizer=tokenizer, text_encoder=fullsize_t5_encoder(),
                                 vae=AutoencoderKLCogVideoX(**VAE[a.variant]).eval(),
                                 transformer=CogVideoXTransformer3DModel(**TRANSFORMER[a.variant]).eval(),
                                 scheduler=released_scheduler(*SCHEDULER[a.variant]))

    return write_pipeline(a, torch.float16 if a.variant == "2b" else torch.bfloat16, build)


if __name__ == "__main__":
    sys.exit(main())
