"""Tiny random FLUX pipelines (real structure, toy sizes) for tests.  Nothing is downloaded."""
import os
import tempfile

import torch

from .tiny_tokenizers import DEFAULT_CORPUS, build_clip_bpe, build_t5_spm

# in the layout of a real FLUX checkpoint, only smaller
TINY_TRANSFORMER = dict(patch_size=1, in_channels=16, out_channels=None, num_layers=2, num_single_layers=2,
                        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                        pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))
TINY_LATENT_CHANNELS = 4          # in_channels == 4 * latent_channels (2x2 packing)
TINY_VAE_BLOCKS = (8, 16)         # vae_scale_factor = 2


def _scheduler(variant: str):
    from diffusers import FlowMatchEulerDiscreteScheduler
    if variant == "dev":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                               base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                               max_image_seq_len=4096)
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096)


def tiny_t5_encoder(vocab_size: int):
    """A 2-layer T5 encoder (d_model 32) in the layout of T5-v1.1 (gated GELU), randomly initialised."""
    from transformers import T5Config, T5EncoderModel
    return T5EncoderModel(T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False)).eval()


def make_tiny_flux(out_dir: str, variant: str = "dev", seed: int = 0) -> str:
    """Build a tiny random FluxPipeline and ``save_pretrained`` it to out_dir (diffusers layout)."""
    if variant not in ("dev", "schnell"):
        raise ValueError(f"variant must be 'dev' or 'schnell', got {variant!r}")
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5TokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = build_clip_bpe(os.path.join(tmp, "clip"), DEFAULT_CORPUS)
        spiece = build_t5_spm(os.path.join(tmp, "t5"), DEFAULT_CORPUS)
        tokenizer = CLIPTokenizer(vocab, merges, model_max_length=77)
        # add_prefix_space=True gives the Metaspace(prepend_scheme="always") of the real FLUX tokenizer.json
        tokenizer_2 = T5TokenizerFast(vocab_file=spiece, add_prefix_space=True, model_max_length=512)

        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=32, pad_token_id=1, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id)).eval()

        torch.manual_seed(seed + 1)
        text_encoder_2 = tiny_t5_encoder(len(tokenizer_2))

        torch.manual_seed(seed + 2)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(TINY_VAE_BLOCKS),
            up_block_types=("UpDecoderBlock2D",) * len(TINY_VAE_BLOCKS), block_out_channels=TINY_VAE_BLOCKS,
            layers_per_block=1, act_fn="silu", latent_channels=TINY_LATENT_CHANNELS, norm_num_groups=4,
            sample_size=32, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
            use_post_quant_conv=False, mid_block_add_attention=True).eval()

        torch.manual_seed(seed + 3)
        transformer = FluxTransformer2DModel(guidance_embeds=(variant == "dev"), **TINY_TRANSFORMER).eval()

        pipe = FluxPipeline(scheduler=_scheduler(variant), vae=vae, text_encoder=text_encoder,
                            tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                            transformer=transformer)
        pipe.save_pretrained(out_dir)
    return out_dir


# limits used for the tiny models in model.json (the exporter's defaults are for real sizes)
def tiny_limits(variant: str, vae_scale_factor: int = 2 ** (len(TINY_VAE_BLOCKS) - 1)) -> dict:
    m = 2 * vae_scale_factor
    return {
        "width": {"min": 32, "max": 512, "multiple_of": m, "default": 64},
        "height": {"min": 32, "max": 512, "multiple_of": m, "default": 64},
        "num_inference_steps": {"min": 1, "max": 50, "default": 4 if variant == "dev" else 2},
    }


# HunyuanVideo in the layout of hunyuanvideo-community/HunyuanVideo, only smaller: 2 heads of 16 (RoPE 4/6/6),
# the real 4-level causal VAE layout (x8 in space, x4 in time) with few channels, and a 3-layer Llama so that
# hidden_states[-3] is a middle layer.
TINY_HUNYUAN_TRANSFORMER = dict(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16,
                                num_layers=2, num_single_layers=2, num_refiner_layers=1, mlp_ratio=4.0,
                                patch_size=2, patch_size_t=1, guidance_embeds=True, text_embed_dim=32,
                                pooled_projection_dim=32, rope_theta=256.0, rope_axes_dim=(4, 6, 6))
TINY_HUNYUAN_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16),
                        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                        up_block_types=("HunyuanVideoUpBlock3D",) * 4, layers_per_block=1, norm_num_groups=4,
                        scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
                        mid_block_add_attention=True)


def make_tiny_hunyuan_video(out_dir: str, seed: int = 0) -> str:
    """Build a tiny random HunyuanVideoPipeline and ``save_pretrained`` it to out_dir (diffusers layout)."""
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline,
                           HunyuanVideoTransformer3DModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, LlamaConfig, LlamaModel, LlamaTokenizerFast

    from .tiny_tokenizers import build_llama_bpe

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = build_clip_bpe(os.path.join(tmp, "clip"), DEFAULT_CORPUS)
        tokenizer_2 = CLIPTokenizer(vocab, merges, model_max_length=77)
        tokenizer = LlamaTokenizerFast.from_pretrained(build_llama_bpe(os.path.join(tmp, "llama")))

        torch.manual_seed(seed)
        text_encoder = LlamaModel(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-5,
            rope_theta=500000.0, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id)).eval()

        torch.manual_seed(seed + 1)
        text_encoder_2 = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer_2), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=32, pad_token_id=1, bos_token_id=tokenizer_2.bos_token_id,
            eos_token_id=tokenizer_2.eos_token_id)).eval()

        torch.manual_seed(seed + 2)
        vae = AutoencoderKLHunyuanVideo(**TINY_HUNYUAN_VAE).eval()

        torch.manual_seed(seed + 3)
        transformer = HunyuanVideoTransformer3DModel(**TINY_HUNYUAN_TRANSFORMER).eval()

        pipe = HunyuanVideoPipeline(text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer, vae=vae,
                                    scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                                    text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        pipe.save_pretrained(out_dir)
    return out_dir


def tiny_hunyuan_limits() -> dict:
    return {
        "width": {"min": 16, "max": 256, "multiple_of": 16, "default": 32},
        "height": {"min": 16, "max": 256, "multiple_of": 16, "default": 32},
        "num_frames": {"min": 1, "max": 33, "multiple_of": 4, "offset": 1, "default": 5},
        "num_inference_steps": {"min": 1, "max": 50, "default": 3},
    }
