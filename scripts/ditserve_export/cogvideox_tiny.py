"""Tiny random CogVideoX pipelines in the layouts of CogVideoX-2b / -5b / 1.5-5B (real structure, toy sizes) for
tests. Nothing is downloaded."""
import os
import tempfile

import torch

from .tiny import tiny_t5_encoder
from .tiny_tokenizers import DEFAULT_CORPUS, build_t5_spm

# What differs between the variants (as in the real configs), plus the scheduler each tiny model uses: the
# 5b-style model carries the DPM solver so both scheduler classes run end to end.
VARIANTS = {
    "2b": dict(transformer={}, scheduler=("CogVideoXDDIMScheduler", 3.0)),
    "5b": dict(transformer=dict(use_rotary_positional_embeddings=True),
               scheduler=("CogVideoXDPMScheduler", 1.0)),
    "1.5": dict(transformer=dict(use_rotary_positional_embeddings=True, patch_size_t=2, patch_bias=False),
                scheduler=("CogVideoXDDIMScheduler", 1.0)),
}
TINY_TRANSFORMER = dict(num_attention_heads=6, attention_head_dim=16, in_channels=4, out_channels=4,
                        time_embed_dim=16, text_embed_dim=32, num_layers=2, sample_width=16, sample_height=16,
                        sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226)


def released_scheduler(class_name: str, snr_shift_scale: float):
    """The released checkpoints' scheduler (scheduler_config.json of THUDM/CogVideoX-*) of class_name."""
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

    cls = CogVideoXDDIMScheduler if class_name == "CogVideoXDDIMScheduler" else CogVideoXDPMScheduler
    return cls(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
               prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
               snr_shift_scale=snr_shift_scale, steps_offset=0, timestep_spacing="trailing")


def make_tiny_cogvideox(out_dir: str, variant: str = "2b", seed: int = 0) -> str:
    """Build a tiny random CogVideoXPipeline and ``save_pretrained`` it to out_dir (diffusers layout)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Tokenizer

    v = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        spiece = build_t5_spm(os.path.join(tmp, "t5"), DEFAULT_CORPUS)
        tokenizer = T5Tokenizer(vocab_file=spiece, model_max_length=226, legacy=True)
        torch.manual_seed(seed)
        text_encoder = tiny_t5_encoder(len(tokenizer))
        torch.manual_seed(seed + 1)
        vae = AutoencoderKLCogVideoX(
            in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
            layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
            scaling_factor=0.7 if variant != "2b" else 1.15258426).eval()
        torch.manual_seed(seed + 2)
        transformer = CogVideoXTransformer3DModel(**TINY_TRANSFORMER, **v["transformer"]).eval()
        scheduler = released_scheduler(*v["scheduler"])
        pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                                 scheduler=scheduler)
        pipe.save_pretrained(out_dir)
    return out_dir


def tiny_cogvideox_limits() -> dict:
    return {
        "width": {"min": 16, "max": 128, "multiple_of": 16, "default": 48},
        "height": {"min": 16, "max": 128, "multiple_of": 16, "default": 32},
        "num_frames": {"min": 1, "max": 25, "multiple_of": 8, "offset": 1, "default": 9},
        "num_inference_steps": {"min": 1, "max": 50, "default": 3},
    }
