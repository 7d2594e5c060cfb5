"""Reference ids for tests/bpe_tokenizer_test.cc (engine/text/bpe_tokenizer.h).

Usage: bpe_tokenizer_reference.py OUT_DIR

Writes tokenizer directories (tokenizer.json + tokenizer_config.json [+ special_tokens_map.json]) under
OUT_DIR and OUT_DIR/reference.json:

  {"variants": [{"name", "dir", "pad_id", "padding_side", "num_special", "vocab_size",
                 "cases": [{"text", "kind", "max_length", "ids", "mask"}]}], "meta": {...}}

kind "encode":   tok(text, max_length=L, padding="max_length", truncation=True,
                     return_attention_mask=True)           (ids + mask)
kind "tokenize": tok(text, add_special_tokens=S).input_ids (S = "special" field)

`tok` is what transformers loads from the directory: LlamaTokenizerFast.from_pretrained(dir) (as diffusers'
HunyuanVideoPipeline loads its tokenizer/) or PreTrainedTokenizerFast.from_pretrained(dir).

Variants:
* llama3_real / llama3_real_legacy_merges: the real Llama-3 vocabulary (128000 tokens, 280147 merges) as in
  HunyuanVideo's tokenizer/ (llava-llama-3-8b: Llama-3 special tokens + <unk> <image> <pad>, BOS template,
  pad "<pad>", padding_side right). Its source is Meta's tiktoken file shipped in the PyPI package
  llama-models (`pip download --no-deps`, sha256-checked, cached), converted with transformers'
  TikTokenConverter -- the converter that produced Meta's own tokenizer.json. The legacy variant stores the
  merges as "a b" strings, as older tokenizer.json files (and HunyuanVideo's) do. Checked here: Meta's
  published ids for "This is a test sentence." and diffusers' crop_start 95 for its default template.
* trained vocabularies (tokenizers' BpeTrainer on a small corpus, so merges matter): Llama-3 layout with
  LlamaTokenizerFast defaults (left padding, add_eos_token, left truncation), permuted merge ranks with and
  without ignore_merges, added tokens with lstrip / rstrip / single_word / normalized, GPT-2 layout
  (ByteLevel with its regex, add_prefix_space from the config), and a partial byte alphabet with unk /
  fuse_unk / byte_fallback / no unk.

Any failure exits non-zero (the C++ test then fails; nothing is skipped), including a failed download.
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tokenizer_reference import (DEFAULT_CORPUS, EXTRA_CORPUS, RealVocabError,  # noqa: E402
                                 curated_texts, fetch_wheel_member, out_dir_arg, real_vocab_texts)

LLAMA_MODELS_VERSION = "0.3.0"
LLAMA3_MEMBER = "llama_models/llama3/tokenizer.model"
LLAMA3_SHA256 = "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Llama-3 (8B / Instruct) special tokens, ids 128000..128255.
LLAMA3_SPECIALS = (["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)] +
                   ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"] +
                   [f"<|reserved_special_token_{i}|>" for i in range(5, 251)])
# HunyuanVideo's tokenizer/ (llava-llama-3-8b) appends these.
LLAVA_EXTRA = ["<unk>", "<image>", "<pad>"]
# tokenizer_config.json of that tokenizer (the fields transformers reads).
LLAVA_CONFIG = {
    "add_bos_token": True, "add_eos_token": False, "add_prefix_space": None, "bos_token": "<|begin_of_text|>",
    "clean_up_tokenization_spaces": True, "eos_token": "<|end_of_text|>", "legacy": True,
    "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 1000000000000000019884624838656,
    "pad_token": "<pad>", "padding_side": "right", "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
    "use_default_system_prompt": False,
}
HUNYUAN_MAX_LENGTH = 256 + 95


def hunyuan_template():
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
    assert DEFAULT_PROMPT_TEMPLATE["crop_start"] == 95, DEFAULT_PROMPT_TEMPLATE
    return DEFAULT_PROMPT_TEMPLATE["template"]


def llama_texts():
    """Llama-3 pre-tokenizer edge cases on top of the generic corpus."""
    texts = [
        # contractions, both cases, and characters that case-fold to their letters
        "I'm", "I'M", "you'll", "YOU'LL", "You'Ll", "it's", "IT'S", "we've", "WE'VE", "she'd", "SHE'D",
        "they're", "THEY'RE", "tHeY'rE", "don't", "DON'T", "'S", "'s'", "''s", "x'ss", "O'Neil", "'sss", "'LLama",
        "it'\u017f", "'\u017f", "'\u212a", "'\u00df", "'\ufb06", "'\u0130", "\u2019s", "`s", "'1", "' s", "'\n's",
        # whitespace runs
        "a  b", "a   b", "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\r\nb", "a\r\n\r\nb", "a\rb", " leading", "trailing ",
        "  both  ", "\n\nstart", "end\n\n", "   ", "\t", "\n", "\r\n", "\r", " \n ", "a \n b", "a\u00a0b",
        "a\u3000b", "\u2028", "a\x0bb", "a\x0cb", "a\x85b", "x  \n  y", "tabs\t\t\tand spaces   mixed \t \n",
        "end with spaces   ", "  \t\n  \r\n\t ", "a\n \nb", ".\n\n", "!!!\n", "code:\n    return x\n",
        "a \x1c\x1d b", "\u200b\u200b", "a\u2029b", " " * 40 + "x", "\n" * 20, "\t \t \t",
        # numbers of many digits
        "1", "12", "123", "1234", "12345", "123456", "1234567", "1234567890", "00000000000000000000",
        "3.14159265358979", "1,000,000", "0x1F", "2024-01-01T12:34:56Z", "10K", "a1b2c3", "v12345",
        "\u0661\u0662\u0663\u0664", "\u00b2\u00b3\u00b9", "\u216b", "\u00bd", "\U0001d7ce\U0001d7cf", "１２３４５",
        "\U0001ccf0\U0001ccf1\U0001ccf2\U0001ccf3",  # Unicode 16 digits
        # letters of Unicode 15.1 / 16.0 (not in Debian 12's ICU)
        "\U0002ebf0\U0002ebf1 ext I", "\U00010d4a\U00010d4b garay", "\U000105c0\U000105c1 todhri",
        # special tokens inside the text
        "<|begin_of_text|>hello", "hi<|eot_id|>there", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|eot_id|><|eot_id|>", "<|eot_id", "<|EOT_ID|>", " <|eot_id|> ", "x <|eot_id|>\n", "<pad>", "<pad><pad>",
        "<unk>", "<image>", "a<image>b", "<|reserved_special_token_5|>", "<|reserved_special_token_250|>",
        "<|reserved_special_token_251|>", "<|begin_of_text|><|begin_of_text|>", "<|end_of_text|>", "<<|eot_id|>>",
        "<|<|eot_id|>|>", "<mask>", " <mask> ", "x<mask>y", "[R]", "[R]   z", "cat", "a cat", "cats", "concat",
        "cat.", "_cat", "ab", "abab", "<|eot_id|>x", "<|eot_id|>xy",
        # scripts
        "Hello\u4e16\u754c", "\u65e5\u672c\u8a9e\u3068English\u306e\u6df7\u5728", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u05e9\u05dc\u05d5\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947",
        "\U0001f642\U0001f643", "e\u0301", "\u00e9", "\U0001F469\U0001F3FD\u200D\U0001F4BB", "\u0001\u0002",
        # prompt-like
        "A cinematic shot of a red fox running through a snowy forest at dawn, 4k, slow motion.",
        "A woman walks down a Tokyo street filled with warm glowing neon. She wears a black leather jacket.",
        "A dog's point of view: running on the beach, waves crashing, golden hour \u2014 ultra realistic.",
    ]
    return texts + curated_texts()


def long_texts():
    paragraph = ("A breathtaking aerial drone shot sweeps over a vast mountain range at sunrise; mist fills the "
                 "valleys, a river glints between pine forests, and a lone hiker stands on a ridge. ")
    return [
        paragraph * 8,
        "word " * 500,
        "a" * 3000,
        "\U0001f389" * 300,
        " " * 3000 + "x",
        "\n" * 500 + "y",
        "1234567890" * 200,
        "supercalifragilisticexpialidocious" * 60,
        ("\u6771\u4eac\u30bf\u30ef\u30fc\u306e\u591c\u666f\u3001" * 80),
    ]


def sweep_texts(rng):
    """Every code point of planes 0-3 (big uniform CJK / Hangul / private-use ranges sampled) and a sample
    of the others, in three contexts each, so the pre-tokenizer's classes are compared wholesale."""
    def boring(cp):
        return ((0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7A3 or
                 0x20000 <= cp <= 0x3FFFF or 0xE000 <= cp <= 0xF8FF) and cp % 61 != 0)
    cps = [cp for cp in range(0x40000) if not (0xD800 <= cp < 0xE000) and not boring(cp)]
    cps += list(range(0x40000, 0x110000, 997))
    texts = []
    chunk = 64
    contexts = ["a", "Z", "1", "'", " ", "\n", ".", "", "'s", "  ", "\t", "e\u0301", "\u4e00"]
    for i in range(0, len(cps), chunk):
        part = [chr(c) for c in cps[i:i + chunk]]
        texts.append(" ".join(part))
        texts.append("".join(part))
        texts.append("".join(rng.choice(contexts) + ch for ch in part))
    return texts


def encode_cases(tok, texts, max_length=None, kinds=("encode",)):
    """max_length=None: the text's length plus 3 pads (so the JSON stays small)."""
    out = []
    for t in texts:
        if "encode" in kinds:
            L = max_length if max_length is not None else len(tok(t).input_ids) + 3
            e = tok(t, max_length=L, padding="max_length", truncation=True, return_attention_mask=True)
            out.append({"text": t, "kind": "encode", "max_length": L, "ids": e.input_ids,
                        "mask": e.attention_mask})
        if "tokenize" in kinds:
            for special in (False, True):
                out.append({"text": t, "kind": "tokenize", "special": special,
                            "ids": tok(t, add_special_tokens=special).input_ids})
    return out


def save_dir(out, name, backend, config, special_map=None):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(backend, str):
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(backend)
    else:
        backend.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    if special_map is not None:
        with open(os.path.join(d, "special_tokens_map.json"), "w", encoding="utf-8") as f:
            json.dump(special_map, f, indent=2)
    return d


def load_reference(d):
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast
    with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
        cls = json.load(f).get("tokenizer_class", "")
    return (LlamaTokenizerFast if cls.startswith("LlamaTokenizer") else PreTrainedTokenizerFast).from_pretrained(d)


def variant(name, d, tok, cases, **extra):
    assert type(tok).__name__ in ("LlamaTokenizerFast", "PreTrainedTokenizerFast"), type(tok)
    return {"name": name, "dir": d, "class": type(tok).__name__, "pad_id": tok.pad_token_id,
            "padding_side": tok.padding_side, "truncation_side": tok.truncation_side,
            "num_special": tok.num_special_tokens_to_add(), "vocab_size": len(tok), "cases": cases, **extra}


def legacy_merges(tokenizer_json):
    """Merges as "a b" strings, pretty-printed: the layout of HunyuanVideo's tokenizer/tokenizer.json (8 MB)."""
    j = json.loads(tokenizer_json)
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    return json.dumps(j, ensure_ascii=False, indent=2)


# --- the real Llama-3 vocabulary ------------------------------------------------------------------------

def llama3_real(out, texts, sweep, template):
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    model_file = fetch_wheel_member("llama-models", LLAMA_MODELS_VERSION, LLAMA3_MEMBER, LLAMA3_SHA256,
                                    f"ditserve-llama3-{LLAMA_MODELS_VERSION}", "the real Llama-3 vocabulary")
    backend = TikTokenConverter(vocab_file=model_file, pattern=LLAMA3_PATTERN,
                                additional_special_tokens=LLAMA3_SPECIALS).converted()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in LLAVA_EXTRA])
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", 128000)])
    model = json.loads(backend.to_str())["model"]
    assert len(model["vocab"]) == 128000 and len(model["merges"]) == 280147 and model["ignore_merges"], \
        (len(model["vocab"]), len(model["merges"]))

    d = save_dir(out, "llama3_real", backend, LLAVA_CONFIG)
    tok = load_reference(d)
    assert (tok.pad_token_id, tok.padding_side, len(tok)) == (128258, "right", 128259), \
        (tok.pad_token_id, tok.padding_side, len(tok))
    # Meta's published ids (llama_models/llama3/tests/api/test_tokenizer.py) and diffusers' crop_start.
    assert tok("This is a test sentence.").input_ids == [128000, 2028, 374, 264, 1296, 11914, 13]
    crop_start = len(tok(template).input_ids) - 2
    assert crop_start == 95, crop_start

    prompts = real_vocab_texts() + texts[:60]
    cases = encode_cases(tok, [template.format(p) for p in prompts] + [template.format("")], HUNYUAN_MAX_LENGTH)
    cases += encode_cases(tok, texts, kinds=("encode", "tokenize"))
    cases += encode_cases(tok, texts[:80], 16)
    cases += encode_cases(tok, ["hello world", "", "<|eot_id|>"], 1)
    cases += encode_cases(tok, long_texts(), HUNYUAN_MAX_LENGTH)
    cases += encode_cases(tok, long_texts(), kinds=("tokenize",))
    cases += encode_cases(tok, sweep)
    v = variant("llama3_real", d, tok, cases, real_vocab=True, llama_models_version=LLAMA_MODELS_VERSION,
                model_sha256=LLAMA3_SHA256, crop_start=crop_start, template=template,
                long_cases=sum(len(tok(template.format(p)).input_ids) > HUNYUAN_MAX_LENGTH for p in prompts))

    d2 = save_dir(out, "llama3_real_legacy_merges", legacy_merges(backend.to_str()), LLAVA_CONFIG)
    tok2 = load_reference(d2)
    cases2 = encode_cases(tok2, [template.format(p) for p in prompts[:40]], HUNYUAN_MAX_LENGTH)
    cases2 += encode_cases(tok2, texts)
    return [v, variant("llama3_real_legacy_merges", d2, tok2, cases2)]


# --- trained vocabularies ------------------------------------------------------------------------------

def training_corpus():
    extra = [
        "I'm sure you'll see they're here; we've said it's done and he'd agree. DON'T SHOUT, I'M HERE.",
        "Numbers like 1234567 and 3.14159 or 2024-01-01 appear often; 42 is the answer.",
        "Tabs\tand\nnewlines\r\nand    spaces matter for code:\n    def f(x):\n        return x\n",
        "<|start_header_id|>user<|end_header_id|>\n\nDescribe the video.<|eot_id|>",
    ]
    return (DEFAULT_CORPUS + EXTRA_CORPUS + extra) * 3


def train(layout, vocab_size, full_alphabet=True, unk=None, specials=()):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token=unk, ignore_merges=layout == "llama3"))
    if layout == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, show_progress=False, special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if full_alphabet else [])
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


def permute_merges(tokenizer_json, ignore_merges, seed):
    """Shuffles merge ranks within blocks: merges stay valid, but whole vocabulary words no longer come out
    of the merges as themselves, so ignore_merges decides the result."""
    j = json.loads(tokenizer_json)
    merges = j["model"]["merges"]
    rng = random.Random(seed)
    for start in range(0, len(merges), 40):
        block = merges[start:start + 40]
        rng.shuffle(block)
        merges[start:start + 40] = block
    j["model"]["ignore_merges"] = ignore_merges
    return json.dumps(j, ensure_ascii=False)


def trained_variants(out, texts, sweep):
    from tokenizers import AddedToken, processors
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<pad>", "<unk>"]
    variants = []
    llama = train("llama3", 1500, specials=specials)
    llama.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", llama.token_to_id("<|begin_of_text|>"))])
    cfg = dict(LLAVA_CONFIG)

    def add(name, backend, config, text_list, special_map=None, extra_cases=None, **extra):
        d = save_dir(out, name, backend, config, special_map)
        tok = load_reference(d)
        cases = encode_cases(tok, text_list, kinds=("encode", "tokenize"))
        cases += encode_cases(tok, text_list[:120], 12)
        cases += encode_cases(tok, long_texts(), 64)
        if extra_cases:
            cases += extra_cases(tok)
        variants.append(variant(name, d, tok, cases, **extra))
        return tok

    tok = add("llama3_trained", llama, cfg, texts, extra_cases=lambda t: encode_cases(t, sweep[::7]))
    assert tok.padding_side == "right"

    # LlamaTokenizerFast's own defaults: padding_side "left" (class attribute) when the config has none;
    # add_eos_token rebuilds the post-processor; truncation from the left.
    cfg_left = {k: v for k, v in cfg.items() if k != "padding_side"}
    cfg_left.update(add_eos_token=True, truncation_side="left")
    tok = add("llama3_trained_left_eos", llama, cfg_left, texts[:200])
    assert tok.padding_side == "left" and tok.truncation_side == "left" and tok.num_special_tokens_to_add() == 2

    permuted = [add(f"llama3_trained_permuted_ignore_merges_{str(ignore).lower()}",
                    permute_merges(llama.to_str(), ignore, seed=7), cfg, texts[:300]) for ignore in (True, False)]
    assert_differs(*permuted, texts[:300], "ignore_merges")

    # Added tokens with every flag (PreTrainedTokenizerFast, so that the config keeps them as they are).
    flagged = train("llama3", 1200, specials=specials)
    flagged.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A <|end_of_text|>",
        special_tokens=[("<|begin_of_text|>", flagged.token_to_id("<|begin_of_text|>")),
                        ("<|end_of_text|>", flagged.token_to_id("<|end_of_text|>"))])
    flagged.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True),
                                AddedToken("<|eot_id|>x", normalized=False, special=True)])
    flagged.add_tokens([AddedToken("[R]", rstrip=True, normalized=False), AddedToken("cat", single_word=True),
                        AddedToken("ab", normalized=True), AddedToken("\u00e9t\u00e9", normalized=True)])
    tok = add("trained_added_tokens", flagged,
        {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "bos_token": "<|begin_of_text|>",
         "eos_token": "<|end_of_text|>", "padding_side": "right"}, texts[:300])
    # each flag changes something: lstrip eats the space, rstrip the spaces, single_word skips "concat"
    ids = tok.convert_tokens_to_ids(["<mask>", "[R]", "cat"])
    assert tok(" <mask>", add_special_tokens=False).input_ids == [ids[0]]
    assert tok("[R]   z", add_special_tokens=False).input_ids[0] == ids[1] and len(tok("[R]   z").input_ids) == 4
    assert ids[2] not in tok("concat", add_special_tokens=False).input_ids
    assert tok("a cat", add_special_tokens=False).input_ids[-1] == ids[2]

    # GPT-2 layout: ByteLevel(add_prefix_space, use_regex) alone; transformers replaces add_prefix_space with
    # the config's (False when absent).
    gpt2 = train("gpt2", 1200, specials=["<|endoftext|>"])
    gpt2.post_processor = processors.ByteLevel(trim_offsets=False)
    base = {"tokenizer_class": "PreTrainedTokenizerFast", "padding_side": "left", "truncation_side": "left"}
    tok = add("gpt2_trained_prefix_space", gpt2, dict(base, add_prefix_space=True), texts[:300],
              special_map={"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
    assert tok.padding_side == "left" and tok.num_special_tokens_to_add() == 0
    tok2 = add("gpt2_trained_no_prefix_space", gpt2, dict(base, pad_token="<|endoftext|>"), texts[:300])
    assert_differs(tok, tok2, texts[:300], "add_prefix_space")
    # "add_prefix_space": null leaves the file's ByteLevel(add_prefix_space=True) as it is.
    tok3 = add("gpt2_trained_prefix_space_null", gpt2, dict(base, pad_token="<|endoftext|>", add_prefix_space=None),
               texts[:100])
    assert tok3("a").input_ids == tok("a").input_ids != tok2("a").input_ids

    # A config special token that is a model token but no added token: transformers adds it (special), so
    # it splits the text like an added token ("singing" -> "s" + "ing" + "ing", whatever the merges say).
    word = "ing"
    assert llama.token_to_id(word) is not None, "the trained vocabulary has no token 'ing'"
    tok = add("llama3_trained_special_from_vocab", llama, dict(cfg, unk_token=word), texts[:300])
    assert tok("singing", add_special_tokens=False).input_ids[-1] == llama.token_to_id(word)
    assert_differs(tok, load_reference(os.path.join(out, "llama3_trained")), texts[:300], "special token from vocab")

    # Partial byte alphabet: bytes the corpus lacks are unknown to the model.
    partial = {}
    for name, unk, fuse, fallback in [("partial_unk", "<unk>", False, False), ("partial_fuse_unk", "<unk>", True, False),
                                      ("partial_no_unk", None, False, False),
                                      ("partial_byte_fallback", "<unk>", False, True)]:
        t = train("llama3", 900, full_alphabet=False, unk=unk, specials=(["<unk>"] if unk else []) + ["<pad>"])
        j = json.loads(t.to_str())
        j["model"]["fuse_unk"] = fuse
        j["model"]["byte_fallback"] = fallback
        if fallback:
            vocab = j["model"]["vocab"]
            for b in range(256):
                vocab.setdefault(f"<0x{b:02X}>", len(vocab))
            j["model"]["byte_fallback"] = True
        partial[name] = add(name, json.dumps(j, ensure_ascii=False),
                            {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>"}, texts[:300])
    unknown = "a\x01\x02\x03 b\x04\x7f!"  # bytes the corpus lacks
    lengths = {k: len(t(unknown, add_special_tokens=False).input_ids) for k, t in partial.items()}
    unk_id = partial["partial_unk"].convert_tokens_to_ids("<unk>")
    assert unk_id in partial["partial_unk"](unknown).input_ids, lengths
    assert lengths["partial_fuse_unk"] < lengths["partial_unk"], lengths
    assert lengths["partial_no_unk"] < lengths["partial_fuse_unk"], lengths
    assert lengths["partial_byte_fallback"] > lengths["partial_unk"], lengths
    return variants


def assert_differs(tok_a, tok_b, texts, what):
    """The two settings must give different ids somewhere, or the pair tests nothing."""
    n = sum(tok_a(t).input_ids != tok_b(t).input_ids for t in texts)
    assert n > 0, f"{what}: both settings give the same ids on every text"


def main():
    out = out_dir_arg(__doc__)
    if out is None:
        return 2
    import tokenizers
    import transformers

    texts = llama_texts()
    sweep = sweep_texts(random.Random(1234))
    template = hunyuan_template()
    try:
        variants = llama3_real(out, texts, sweep, template)
    except RealVocabError as e:
        print(f"ERROR: real Llama-3 vocabulary unavailable: {e}", file=sys.stderr)
        return 3
    variants += trained_variants(out, texts, sweep)
    ref = {"variants": variants,
           "meta": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}}
    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=True)
    n = sum(len(v["cases"]) for v in variants)
    print(f"wrote {n} reference cases in {len(variants)} variants to {out}/reference.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
