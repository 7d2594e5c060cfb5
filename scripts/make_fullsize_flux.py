#!/usr/bin/env python3
"""Write a FLUX.1-dev/schnell pipeline directory at the released configs with random bf16 weights
(sharded safetensors, the layout FluxPipeline.save_pretrained writes). Used to measure export RAM/time
and performance without downloading weights. Tokenizers are the small trained ones (ids stay in range).

  make_fullsize_flux.py --out DIR [--variant dev|schnell]
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ditserve_export.tiny import _scheduler  # noqa: E402
from ditserve_export.tiny_tokenizers import DEFAULT_CORPUS, build_clip_bpe, build_t5_spm  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--variant", default="dev", choices=["dev", "schnell"])
    p.add_argument("--device", default="cpu",
                   help="where to initialise the random weights (cuda: seconds instead of minutes)")
    a = p.parse_args()
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    t0 = time.time()
    torch.set_default_dtype(torch.bfloat16)  # initialise in bf16: never an fp32 copy of 12B weights
    torch.manual_seed(0)
    torch.set_default_device(a.device)
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = build_clip_bpe(os.path.join(tmp, "clip"), DEFAULT_CORPUS)
        spiece = build_t5_spm(os.path.join(tmp, "t5"), DEFAULT_CORPUS)
        tokenizer = CLIPTokenizer(vocab, merges, model_max_length=77)
        tokenizer_2 = T5TokenizerFast(vocab_file=spiece, add_prefix_space=True, model_max_length=512)
        # Released configs: CLIP ViT-L/14 text, T5 v1.1 XXL encoder, FLUX VAE, FLUX transformer.
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)).eval()
        text_encoder_2 = T5EncoderModel(T5Config(
            vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
            feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False,
            pad_token_id=0, eos_token_id=1)).eval()
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
            latent_channels=16, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
            use_quant_conv=False, use_post_quant_conv=False).eval()
        transformer = FluxTransformer2DModel(guidance_embeds=(a.variant == "dev")).eval()
        print(f"built in {time.time() - t0:.1f}s; transformer params "
              f"{sum(x.numel() for x in transformer.parameters()) / 1e9:.2f}B", flush=True)
        pipe = FluxPipeline(scheduler=_scheduler(a.variant), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                            text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
        pipe.save_pretrained(a.out, max_shard_size="5GB")
    print(f"wrote {a.out} in {time.time() - t0:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
