#!/usr/bin/env python3
"""Write a HunyuanVideo pipeline directory at the released configs (hunyuanvideo-community/HunyuanVideo:
HunyuanVideoTransformer3DModel 12.8B, the Llama-3-8B-shaped text encoder, CLIP-L, AutoencoderKLHunyuanVideo,
FlowMatchEulerDiscreteScheduler shift 7) with random bf16 weights, in the layout HunyuanVideoPipeline.save_pretrained
writes (~43 GB: keep it in /dev/shm). For benchmarks without downloading weights; the tokenizers are small trained
ones in the real layouts (Llama-3 byte-level BPE, CLIP BPE), whose ids stay inside the encoders' vocabularies.
Weights are initialised on --device (cuda: seconds) in bf16, never fp32.

  make_fullsize_hunyuan_video.py --out DIR [--device cuda]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ditserve_export.fullsize import parse_args, write_pipeline  # noqa: E402
from ditserve_export.tiny_tokenizers import DEFAULT_CORPUS, build_clip_bpe, build_llama_bpe  # noqa: E402

# text_encoder/config.json and text_encoder_2/config.json of the released pipeline
LLAMA = dict(vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rms_norm_eps=1e-5,
             rope_theta=500000.0)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768)


def text_encoders(tmp: str, llama: dict, clip: dict):
    """(tokenizer, Llama encoder, CLIP tokenizer, CLIP text model) at the given configs, special ids the tokenizers'."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, LlamaConfig, LlamaModel, LlamaTokenizerFast

    tokenizer = LlamaTokenizerFast.from_pretrained(build_llama_bpe(os.path.join(tmp, "llama")))
    vocab, merges = build_clip_bpe(os.path.join(tmp, "clip"), DEFAULT_CORPUS)
    tokenizer_2 = CLIPTokenizer(vocab, merges, model_max_length=77)
    text_encoder = LlamaModel(LlamaConfig(**llama, pad_token_id=tokenizer.pad_token_id,
                                          bos_token_id=tokenizer.bos_token_id,
                                          eos_token_id=tokenizer.eos_token_id)).eval()
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(**clip, pad_token_id=1, bos_token_id=tokenizer_2.bos_token_id,
                                                  eos_token_id=tokenizer_2.eos_token_id)).eval()
    return tokenizer, text_encoder, tokenizer_2, text_encoder_2


def main() -> int:
    a = parse_args(__doc__)
    from diffusers import (AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoPipeline,
                           HunyuanVideoTransformer3DModel)

    def build(tmp: str):
        tokenizer, text_encoder, tokenizer_2, text_encoder_2 = text_encoders(tmp, LLAMA, CLIP_L)
        return HunyuanVideoPipeline(text_encoder=text_encoder, tokenizer=tokenizer,
                                    transformer=HunyuanVideoTransformer3DModel().eval(),  # released = defaults
                                    vae=AutoencoderKLHunyuanVideo().eval(),
                                    scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                                    text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)

    return write_pipeline(a, torch.bfloat16, build)


if __name__ == "__main__":
    sys.exit(main())
