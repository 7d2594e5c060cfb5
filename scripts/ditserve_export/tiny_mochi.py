"""A tiny random Mochi-1 pipeline (real structure, toy sizes) for tests.  Nothing is downloaded."""
import os
import tempfile

import torch

from .tiny import tiny_t5_encoder
from .tiny_tokenizers import DEFAULT_CORPUS, build_t5_spm

TINY_TRANSFORMER = dict(patch_size=2, num_attention_heads=2, attention_head_dim=8, num_layers=2,
                        pooled_projection_dim=16, in_channels=12, text_embed_dim=32, time_embed_dim=16)
TINY_VAE = dict(encoder_block_out_channels=(32, 32, 32, 32), decoder_block_out_channels=(32, 32, 32, 32),
                layers_per_block=(1, 1, 1, 1, 1))
TINY_MAX_SEQUENCE_LENGTH = 256


def make_tiny_mochi(out_dir: str, seed: int = 0) -> str:
    """Build a tiny random MochiPipeline and ``save_pretrained`` it to out_dir (diffusers layout). The real
    scheduler config (invert_sigmas) and the original Mochi's zeroed empty prompts."""
    from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel
    from transformers import T5TokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        spiece = build_t5_spm(os.path.join(tmp, "t5"), DEFAULT_CORPUS)
        tokenizer = T5TokenizerFast(vocab_file=spiece, add_prefix_space=True,
                                    model_max_length=TINY_MAX_SEQUENCE_LENGTH)
        torch.manual_seed(seed)
        text_encoder = tiny_t5_encoder(len(tokenizer))
        torch.manual_seed(seed + 1)
        vae = AutoencoderKLMochi(**TINY_VAE).eval()
        torch.manual_seed(seed + 2)
        transformer = MochiTransformer3DModel(**TINY_TRANSFORMER).eval()
        # diffusers initialises the learned RoPE frequencies to 0 (no rotation): give them values
        with torch.no_grad():
            transformer.pos_frequencies.normal_(0, 0.5)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                                    invert_sigmas=True)
        pipe = MochiPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                             transformer=transformer, force_zeros_for_empty_prompt=True)
        pipe.save_pretrained(out_dir)
    return out_dir


def tiny_mochi_limits() -> dict:
    return {
        "width": {"min": 16, "max": 256, "multiple_of": 16, "default": 32},
        "height": {"min": 16, "max": 256, "multiple_of": 16, "default": 32},
        "num_frames": {"min": 7, "max": 31, "multiple_of": 6, "offset": 1, "default": 7},
        "num_inference_steps": {"min": 2, "max": 50, "default": 3},
    }
