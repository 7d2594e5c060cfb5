"""The T5-v1.1-XXL encoder of the released video pipelines (Mochi-1, CogVideoX) with random weights, and a small
trained SentencePiece tokenizer whose ids stay in its vocabulary: for full-size benchmark checkpoints."""
import os

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
