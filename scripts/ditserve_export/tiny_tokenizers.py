"""Real (small) tokenizer files for tiny test models, trained on a built-in English corpus.

* ``build_clip_bpe(out_dir, corpus)``: CLIP-format byte-level BPE (vocab.json + merges.txt) that
  ``transformers.CLIPTokenizer`` loads: bytes_to_unicode alphabet, ``</w>`` end-of-word marker,
  ``<|startoftext|>`` / ``<|endoftext|>`` as the last two ids (as in openai/clip-vit-large-patch14).
* ``build_t5_spm(out_dir, corpus)``: SentencePiece unigram model ``spiece.model`` with T5's special ids
  (pad=0, eos=1, unk=2, no bos) that ``T5Tokenizer`` / ``T5TokenizerFast`` load.

Both are deterministic for a given corpus.
"""
import collections
import json
import os
from typing import Dict, Iterable, List, Sequence, Tuple

import regex

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
# CLIPTokenizer's pre-tokenisation pattern (after lower-casing and whitespace clean-up).
CLIP_PAT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)

DEFAULT_CORPUS: List[str] = [
    "A photo of a cat sitting on a wooden table next to a window.",
    "A watercolor painting of a lighthouse on a rocky coast at sunset.",
    "An astronaut riding a horse on the surface of the moon, digital art.",
    "A bowl of fresh fruit with apples, oranges and bananas on a kitchen counter.",
    "The quick brown fox jumps over the lazy dog.",
    "A futuristic city skyline at night with neon lights reflecting in the rain.",
    "Portrait of an old man with a white beard, dramatic lighting, oil painting.",
    "A small red boat floating on a calm blue lake surrounded by mountains.",
    "A cozy living room with a fireplace, a green sofa and many books.",
    "Two dogs playing in the snow in a park during winter.",
    "A close-up photograph of a honeybee collecting pollen from a yellow flower.",
    "An ancient stone castle on a hill under a cloudy sky.",
    "A plate of spaghetti with tomato sauce and basil, food photography.",
    "A child flying a kite on a windy beach in the summer.",
    "A robot reading a newspaper in a cafe, cinematic, highly detailed.",
    "A forest path covered with autumn leaves in warm morning light.",
    "A sign that says hello world written in bold letters.",
    "Three birds sitting on a power line against a pink evening sky.",
    "A vintage car parked in front of a colorful house in the old town.",
    "A mountain landscape with a river, pine trees and a wooden bridge.",
    "A glass of orange juice and a croissant on a white plate for breakfast.",
    "An illustration of a dragon flying over a medieval village at dawn.",
    "A black and white photo of a busy street in New York in 1950.",
    "A teddy bear wearing a blue scarf sitting on a bed.",
    "The sun is shining and the children are playing in the garden.",
    "She walked to the market and bought bread, cheese and some flowers.",
    "He said that the weather would be better tomorrow morning.",
    "We're going to the museum to see the paintings and the sculptures.",
    "It's a beautiful day, isn't it? Let's take a walk by the river.",
    "They've built a new bridge across the river near the station.",
    "I'll meet you at the library at 10 o'clock on Monday.",
    "The price of the ticket was 25 dollars and 50 cents.",
    "A high resolution 4k render of a crystal sphere on black velvet.",
    "Studio photo of a pair of running shoes, product shot, soft shadows.",
    "A snowy owl with yellow eyes perched on a branch in the moonlight.",
    "An underwater scene with coral reefs, tropical fish and a sea turtle.",
    "A steaming cup of coffee on a rainy day next to an open notebook.",
    "A hot air balloon drifting over green fields and small farms.",
    "Abstract geometric shapes in red, yellow and blue, minimalist poster.",
    "A knight in shining armor standing in front of a burning tower.",
    "A tiny house in the middle of a field of sunflowers.",
    "The train arrived at the station exactly on time this evening.",
    "Children's drawing of a family in front of their home with a dog.",
    "A macro shot of water drops on a green leaf after the rain.",
    "A panda eating bamboo in a misty forest, national geographic style.",
    "A street food market at night with lanterns and many people.",
    "A detailed pencil sketch of a human hand holding a pen.",
    "A sailing ship in a storm with huge waves and lightning.",
    "A lazy cat sleeping in a basket full of yarn.",
    "The library was quiet except for the sound of turning pages.",
    "Golden wheat fields under a bright blue sky with white clouds.",
    "A neon sign in the shape of a pizza slice on a brick wall.",
    "A wizard casting a spell with glowing blue light in a dark cave.",
    "Fresh vegetables: carrots, tomatoes, onions, peppers and potatoes.",
    "A modern kitchen with marble counters and large windows.",
    "An elephant walking across the savanna at golden hour.",
    "Happy birthday! Cake with candles, balloons and colorful confetti.",
    "A desert road stretching to the horizon under a starry night sky.",
    "A young woman reading a book under a cherry blossom tree.",
    "Very detailed, sharp focus, trending on artstation, beautiful lighting.",
]


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) \
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _clip_words(corpus: Iterable[str]) -> collections.Counter:
    b2u = bytes_to_unicode()
    counts: collections.Counter = collections.Counter()
    for line in corpus:
        text = " ".join(line.split()).strip().lower()
        for tok in CLIP_PAT.findall(text):
            chars = [b2u[b] for b in tok.encode("utf-8")]
            word = tuple(chars[:-1]) + (chars[-1] + "</w>",)
            counts[word] += 1
    return counts


def _merge_word(word: Tuple[str, ...], pair: Tuple[str, str]) -> Tuple[str, ...]:
    out: List[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def build_clip_bpe(out_dir: str, corpus: Sequence[str] = DEFAULT_CORPUS, num_merges: int = 300
                   ) -> Tuple[str, str]:
    """Learn ``num_merges`` BPE merges (or fewer if the corpus runs out) and write CLIP-format
    ``vocab.json`` and ``merges.txt`` into out_dir.  Returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    words = _clip_words(corpus)
    merges: List[Tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: collections.Counter = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        # most frequent pair, ties broken lexicographically -> deterministic
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        new_words: collections.Counter = collections.Counter()
        for w, c in words.items():
            new_words[_merge_word(w, best)] += c
        words = new_words

    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges]
    seen = set()
    vocab_list: List[str] = []
    for t in tokens:  # a merge can recreate an existing symbol only in degenerate corpora; stay unique
        if t not in seen:
            seen.add(t)
            vocab_list.append(t)
    vocab_list += [CLIP_BOS, CLIP_EOS]
    vocab = {t: i for i, t in enumerate(vocab_list)}
    vocab_path = os.path.join(out_dir, "vocab.json")
    merges_path = os.path.join(out_dir, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return vocab_path, merges_path


def build_t5_spm(out_dir: str, corpus: Sequence[str] = DEFAULT_CORPUS, vocab_size: int = 400) -> str:
    """Train a SentencePiece unigram model with T5's special ids; writes out_dir/spiece.model."""
    import sentencepiece as spm

    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, "spiece")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(corpus)), model_prefix=prefix, model_type="unigram",
        vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        num_threads=1, seed_sentencepiece_size=100000, minloglevel=2)
    try:
        os.remove(prefix + ".vocab")
    except OSError:
        pass
    return prefix + ".model"


# Llama-3's pre-tokenizer split (tokenizer.json of Meta-Llama-3 / HunyuanVideo's llava-llama-3-8b)
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                   "<unk>", "<pad>")


def build_llama_bpe(out_dir: str, corpus: Sequence[str] = DEFAULT_CORPUS, vocab_size: int = 600) -> str:
    """A Llama-3-layout byte-level BPE (Split + ByteLevel pre-tokenizer, ignore_merges, BOS template) trained on
    corpus, saved as a LlamaTokenizerFast directory padded on the right with <pad> (HunyuanVideo's tokenizer/
    settings). Returns out_dir."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  special_tokens=list(LLAMA3_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(corpus) * 2, trainer=trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    fast = LlamaTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|end_of_text|>", unk_token="<unk>",
                              pad_token="<pad>", add_bos_token=True, add_eos_token=False, padding_side="right",
                              legacy=True)
    fast.save_pretrained(out_dir)
    return out_dir
