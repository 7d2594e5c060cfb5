"""Reference token ids for tests/tokenizer_test.cc.

Usage: tokenizer_reference.py OUT_DIR

Builds small real tokenizers with scripts/ditserve_export/tiny_tokenizers.py (CLIP-format BPE and a
T5 SentencePiece unigram model) and writes OUT_DIR/reference.json:

  {"clip": [{"name", "vocab", "merges", "cases": [{"text", "max_length", "ids"}]}],
   "t5":   [{"name", "model", "cases": [...]}], "meta": {...}}

The ids come from exactly the tokenizers FluxPipeline uses:
  transformers.CLIPTokenizer(vocab, merges)(text, padding="max_length", max_length=L, truncation=True)
  transformers.T5TokenizerFast(vocab_file=spiece.model)(text, padding="max_length", max_length=L,
                                                        truncation=True)
It also adds a "clip_real" variant built from the real CLIP BPE vocabulary (the one FLUX's
tokenizer/ uses: 49408 tokens, 48894 merges). That file ships inside the PyPI package open_clip_torch as
open_clip/bpe_simple_vocab_16e6.txt.gz; the package itself pulls torch/torchvision/timm, so it is NOT a
requirement: the wheel alone is fetched with `pip download --no-deps open_clip_torch==OPEN_CLIP_VERSION`,
only the .gz is read out of it (checked against its sha256), cached under $DITSERVE_TOKENIZER_CACHE
(default: <tmp>/ditserve-clip-bpe-OPEN_CLIP_VERSION), and converted to vocab.json + merges.txt exactly
as CLIP's SimpleTokenizer builds its tables.

Any failure exits non-zero (the C++ test then fails; nothing is skipped) -- including a failed
download of the real vocabulary.
"""
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

from ditserve_export.tiny_tokenizers import DEFAULT_CORPUS, build_clip_bpe, build_t5_spm  # noqa: E402

# Extra training lines so that merges/pieces also cover multi-byte characters.
EXTRA_CORPUS = [
    "Café au lait, crème brûlée et pâté — très délicieux à Noël.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein; Grüße aus München.",
    "El niño pidió una piña y un jalapeño en la mañana; ¿qué tal? ¡Olé!",
    "東京の夜景、桜の花、富士山。猫が好きです。中文字符测试，你好世界。",
    "한국어 문장도 조금 있습니다. Ελληνικά γράμματα και Русский текст тоже.",
    "Emoji party 🎉🐱👍🏽 with hearts ❤️ and flags 🇫🇷 and family 👨‍👩‍👧.",
    "Numbers 0123456789, 3.14159, 1,000,000 and ½ ¾ ² ³ Ⅻ ٣ ४.",
    "Quotes “curly” ‘single’ «guillemets» and dashes – — … ellipsis.",
    "don't won't can't it's we're they've I'm you'll he'd",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ ａｎｄ ﬁ ligatures ﬂow, Ⓐ ① ㈱ ㎏.",
]

CLIP_MAX = 77
T5_MAX = 512

# Real CLIP BPE vocabulary (OpenAI CLIP's bpe_simple_vocab_16e6.txt.gz, byte-identical in open_clip).
OPEN_CLIP_VERSION = "3.3.0"
CLIP_BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
CLIP_BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


class RealVocabError(RuntimeError):
    pass


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel_member(package, version, member, sha256, cache_name, what):
    """Returns the path of a verified copy of `member` of the wheel package==version, downloading the
    wheel (no dependencies) when it is not cached yet under $DITSERVE_TOKENIZER_CACHE (default
    <tmp>/cache_name). Raises RealVocabError with a clear message."""
    cache = os.environ.get("DITSERVE_TOKENIZER_CACHE") or os.path.join(tempfile.gettempdir(), cache_name)
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, os.path.basename(member))
    if os.path.exists(path) and _sha256(path) == sha256:
        return path
    with tempfile.TemporaryDirectory(prefix=f"ditserve-{package}-wheel-") as dl:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", dl, f"{package}=={version}"]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RealVocabError(f"cannot download {what}: {' '.join(cmd)}: {e}")
        wheels = [f for f in os.listdir(dl) if f.endswith(".whl")]
        if p.returncode != 0 or len(wheels) != 1:
            raise RealVocabError(
                f"cannot download {what} (PyPI must be reachable for this test): "
                f"{' '.join(cmd)} exited {p.returncode}, wheels={wheels}\n{p.stdout[-4000:]}")
        try:
            with zipfile.ZipFile(os.path.join(dl, wheels[0])) as z:
                data = z.read(member)
        except (KeyError, zipfile.BadZipFile) as e:
            raise RealVocabError(f"{wheels[0]} has no readable {member}: {e}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RealVocabError(f"{member} from {wheels[0]} has sha256 {digest}, expected {sha256}")
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def fetch_clip_bpe():
    """Returns the path of a verified bpe_simple_vocab_16e6.txt.gz (from the open_clip_torch wheel)."""
    return fetch_wheel_member("open_clip_torch", OPEN_CLIP_VERSION, CLIP_BPE_MEMBER, CLIP_BPE_SHA256,
                              f"ditserve-clip-bpe-{OPEN_CLIP_VERSION}", "the real CLIP vocabulary")


def bytes_to_unicode():
    """CLIP's (and GPT-2's) byte -> printable unicode char table, in CLIP's order."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_real_clip(out_dir, gz_path):
    """vocab.json + merges.txt from the CLIP .gz, exactly as CLIP's SimpleTokenizer builds them."""
    os.makedirs(out_dir, exist_ok=True)
    lines = gzip.open(gz_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    assert len(merges) == 48894 and all(len(m) == 2 for m in merges), len(merges)
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    for m in merges:
        vocab.append("".join(m))
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    assert len(vocab) == 49408 and len(set(vocab)) == 49408, len(vocab)
    vocab_path = os.path.join(out_dir, "vocab.json")
    merges_path = os.path.join(out_dir, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return vocab_path, merges_path


def real_vocab_texts():
    """Prompts for the real vocabulary: typical FLUX prompts, long prompts, accents, CJK, emoji,
    punctuation, numbers."""
    flux = [
        "A cat holding a sign that says hello world",
        "a tiny astronaut hatching from an egg on the moon",
        "A photo of an astronaut riding a horse on mars, high quality, 8k, photorealistic",
        "Cinematic still of a cyberpunk city at night, neon lights reflecting on wet streets, rain, "
        "volumetric fog, shot on 35mm film, shallow depth of field, bokeh",
        "portrait of a young woman with freckles and red hair, soft natural light, Canon EOS R5, 85mm f/1.2",
        "An oil painting of a lighthouse on a cliff during a storm, in the style of J.M.W. Turner",
        "isometric 3D render of a cozy tiny house, pastel colors, low poly, Blender, octane render",
        "A delicious bowl of ramen with a soft-boiled egg, chashu pork, nori and scallions, food photography",
        "watercolor illustration of a fox in a snowy forest, children's book style",
        "logo design for a coffee shop called \"Bean There\", minimalist, flat vector, white background",
        "ultra-detailed macro shot of a dewdrop on a spider web at sunrise",
        "a majestic lion wearing a crown, digital art, trending on artstation, 4k wallpaper",
        "Studio Ghibli style landscape with rolling hills, windmills and fluffy clouds",
        "A vintage poster for the 1969 moon landing, retro typography, screen print texture",
        "neon sign that reads 'OPEN 24/7' in a rainy alley, reflections, moody atmosphere",
        "A DSLR photo of a corgi wearing sunglasses at the beach, golden hour",
        "masterpiece, best quality, highly detailed, sharp focus, HDR, (dramatic lighting:1.3), [blurry]",
        "an anime girl with blue hair, school uniform, cherry blossoms, 2D, cel shading",
        "Product shot of a sleek black smartwatch on marble, studio lighting, commercial photography",
        "Text that says \"FLUX.1 [dev]\" written in chalk on a blackboard",
        "A BLUE BOX ON TOP OF A RED SPHERE, NEXT TO A GREEN CUBE",
        "selfie of a raccoon in Times Square, New York City, iPhone photo",
        "a robot reading a newspaper in a Parisian café, late 19th-century impressionism",
        "Hyperrealistic close-up of an eye with a galaxy in the iris",
        "steampunk airship over Victorian London, brass gears, sepia tones",
    ]
    long_prompts = [
        "A breathtaking panoramic view of an ancient fantasy city built into the side of a colossal "
        "mountain, with cascading waterfalls pouring from stone aqueducts, towering spires topped with "
        "glowing crystals, bustling marketplaces filled with merchants in colorful robes, winged "
        "creatures circling overhead, lush hanging gardens, golden sunlight breaking through storm "
        "clouds, intricate architectural details, epic scale, matte painting, concept art, highly "
        "detailed, cinematic lighting, volumetric rays, 8k resolution, trending on ArtStation",
        ", ".join(["ultra detailed", "photorealistic", "masterpiece", "best quality"] * 12),
        "The quick brown fox jumps over the lazy dog. " * 12,
        "supercalifragilisticexpialidocious " * 20,
        "🌸🌊🔥 " * 40,
        "東京タワーの夜景、" * 30,
        "0123456789 " * 20,
    ]
    accents = [
        "Café au lait, crème brûlée et pâté — très délicieux à Noël.",
        "Über den Wolken muss die Freiheit wohl grenzenlos sein; Grüße aus München.",
        "El niño pidió una piña y un jalapeño; ¿qué tal? ¡Olé!",
        "naïve façade of a château in Provence, Ångström, Øresund, Łódź, İstanbul, Ærø",
        "cafe\u0301 (decomposed) vs café (composed)", "ÉCOLE NORMALE SUPÉRIEURE", "straße STRASSE ß",
        "São Paulo, Curaçao, Reykjavík, Kraków, Dvořák, Beyoncé, Pokémon",
    ]
    cjk = [
        "東京の夜景、桜の花、富士山。猫が好きです。", "中文字符测试，你好世界。一只可爱的熊猫在竹林里吃竹子",
        "한국어 문장: 서울의 야경과 한강", "日本語とEnglishの混在テキスト with ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
        "水墨画风格的山水，云雾缭绕", "ｶﾀｶﾅ and ひらがな and 漢字", "𠀀𠀁 extension B characters",
        "Ελληνικά γράμματα και Русский текст тоже, עברית, العربية, हिन्दी, ไทย",
    ]
    emoji = [
        "🎉", "a cute cat 🐱 giving a thumbs up 👍🏽", "I ❤️ NY", "family 👨‍👩‍👧 at the park 🌳",
        "flags 🇫🇷🇩🇪🇯🇵", "rainbow flag 🏳️‍🌈", "keycap 1️⃣ 2️⃣", "🚀 to the moon 🌕✨", "😀😃😄😁😆😅😂🤣",
        "pizza🍕burger🍔fries🍟",
    ]
    punct = [
        "Hello, world! How are you? I'm fine... (really) [yes] {no} <tag> a/b\\c @user #tag $5 %50 ^ & * ~ `",
        "!!!???...,,,;;;:::---___+++===|||", "e-mail: foo@bar.com; url: https://example.com/a?q=1&r=2",
        "\"double\" 'single' `back` “curly” ‘quotes’ «guillemets» – — …",
        "don't won't can't it's we're they've I'm you'll he'd DON'T It's rock'n'roll o'clock James' car",
        "(masterpiece:1.2), ((best quality)), [[low quality]], {{detailed}}, <lora:style:0.8>",
        "a photo <|endoftext|> of a cat", "<|startoftext|>hello<|endoftext|>", "#hashtag @mention $$$ ###",
        "", " ", "  leading and trailing  ", "tabs\tand\nnew\nlines", "zero\u200bwidth nbsp\u00a0here",
    ]
    numbers = [
        "0", "7", "42", "123", "2024", "3.14159", "1,000,000", "2024-01-01T12:30:00Z", "v1.2.3",
        "1920x1080", "4k 8k 16k 1080p 720p", "f/1.8 1/250s ISO 100 85mm", "50% off, $19.99, €5, £3, ¥1000",
        "½ ¾ ² ³ Ⅻ ٣٤٥ ४२", "x86_64 arm64 sha256 utf-8", "1234567890" * 10, "99 bottles of beer",
    ]
    return flux + long_prompts + accents + cjk + emoji + punct + numbers


def curated_texts():
    long_words = " ".join(DEFAULT_CORPUS)
    texts = [
        "", " ", "   ", "\t", "\n", "a", "A", "hello world", "Hello World!", "HELLO   WORLD",
        "A photo of a cat sitting on a wooden table next to a window.",
        "The quick brown fox jumps over the lazy dog.",
        # punctuation
        "Hello, world! How are you? I'm fine... (really) [yes] {no} <tag> a/b\\c @user #tag $5 %50 ^ & * ~ `",
        "!!!???...,,,;;;:::---___+++===|||", "a.b.c", "e-mail: foo@bar.com; url: https://x.y/z?q=1&r=2",
        "\"double\" 'single' `back`", "'", "''", "'s", "'S", "'abc", "abc'", "' s", "x'Y",
        # apostrophes / contractions
        "don't", "it's", "It's", "DON'T", "we're they've I'm you'll he'd", "rock'n'roll",
        "the dog's bone", "'re've'm'll'd's't", "o'clock", "James' car", "l'été",
        "it\u2019s curly", "\u017f'\u017f", "'\u017f", "x'\u017fy",
        # accents
        "é", "ü", "ñ", "café", "naïve façade", "Crème Brûlée", "ÉCOLE", "Ünïcödé", "jalapeño",
        "cafe\u0301 (decomposed)", "e\u0301\u0301", "\u212b vs \u00c5", "Ǆ ǅ ǆ", "İstanbul", "ΣΊΣΥΦΟΣ σοφός",
        "ﬁ ﬂ ﬃ", "straße STRASSE", "ᾼ ᾳ", "\u0345", "a\u0345b", "Ⓐⓑ", "Ⅻ ⅻ",
        # CJK
        "東京", "猫が好きです", "中文字符测试，你好世界。", "日本語とEnglishの混在テキスト", "한국어",
        "𠀀𠀁 extension B", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "ｶﾀｶﾅ", "〜〝〞", "\u3000ideographic space\u3000",
        # emoji
        "🎉", "🐱👍🏽", "❤️", "👨‍👩‍👧 family", "🇫🇷🇩🇪", "a🎉b", "emoji at end 😀", "1️⃣ keycap", "🏳️‍🌈",
        # whitespace
        "  leading and trailing  ", "multiple     spaces", "tabs\tand\ttabs", "new\nlines\n\n", "cr\r\nlf",
        "mixed \t\n\r\x0b\x0c whitespace", "nbsp\u00a0here", "thin\u2009space", "zero\u200bwidth",
        "line\u2028sep", "para\u2029sep", "soft\u00adhyphen", "nel\x85x", "ogham\u1680space",
        "ctrl\x01\x02\x1fchars", "bell\x07", "del\x7f", "nul\x00byte", "repl\ufffdchar", "bom\ufeffmark",
        "▁already▁metaspace", "a ▁ b", "▁", "  ▁  ",
        # digits
        "0", "123", "3.14159", "1,000,000", "2024-01-01", "v1.2.3", "٣٤٥", "४२", "½¾²³", "10x10", "x86_64",
        # special tokens inside text
        "<|startoftext|>", "<|endoftext|>", "a photo <|endoftext|> of a cat", "<|ENDOFTEXT|>",
        "<|startoftext|>hello<|endoftext|>", "x<|endoftext|>", "!<|endoftext|>", "<|\u017ftartoftext|>",
        "</s>", "hello</s>world", "<pad>", "<unk>", "a <unk> b", "<extra_id_0> fill <extra_id_99>",
        "<extra_id_100>", "<s>", "<mask>",
        # other scripts
        "Ελληνικά", "Русский текст", "עברית", "العربية", "हिन्दी", "ไทย", "ქართული", "Ꭰ Cherokee",
        "Zalgo t\u0336\u0353e\u0337x\u0338t", "a\u0308\u0301\u0327", "\U0001d400\U0001d401 math bold",
        # long prompts (truncation)
        long_words,
        "word " * 200,
        "a" * 1000,
        "🎉" * 100,
        "verylongwordwithoutspaces" * 30,
        "1234567890" * 60,
        ", ".join(DEFAULT_CORPUS[:20]),
    ]
    texts += DEFAULT_CORPUS + EXTRA_CORPUS
    return texts


def unicode_sweep_texts():
    """Every code point assigned in the Python's Unicode database (plus a few unassigned), in mixed
    contexts, so character-class, case-mapping and normalisation tables are compared wholesale."""
    cps = [cp for cp in range(0x110000)
           if not (0xD800 <= cp < 0xE000) and (unicodedata.category(chr(cp)) != "Cn" or cp % 4096 == 7)]
    # skip the huge uniform CJK / Hangul / private-use ranges, except a sample
    def boring(cp):
        return ((0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7A3 or
                 0x20000 <= cp <= 0x323AF or 0xE000 <= cp <= 0xF8FF or cp >= 0xF0000) and cp % 97 != 0)
    cps = [cp for cp in cps if not boring(cp)]
    rng = random.Random(1234)
    texts = []
    chunk = 48
    for i in range(0, len(cps), chunk):
        part = [chr(c) for c in cps[i:i + chunk]]
        # 1) space separated, 2) glued together, 3) glued to ascii letters/digits/apostrophes
        texts.append(" ".join(part))
        texts.append("".join(part))
        mixed = []
        for ch in part:
            mixed.append(rng.choice(["a", "Z", "1", "'", " ", ".", "", "e\u0301", "S"]) + ch)
        texts.append("".join(mixed))
    return texts


def encode_cases(tok, texts, max_length=None):
    """max_length=None: just long enough for the whole text plus 3 pad tokens (keeps the JSON small)."""
    out = []
    for t in texts:
        L = max_length if max_length is not None else len(tok(t).input_ids) + 3
        ids = tok(t, padding="max_length", max_length=L, truncation=True).input_ids
        out.append({"text": t, "max_length": L, "ids": ids})
    return out


def out_dir_arg(doc):
    """The OUT_DIR command-line argument, created; None (usage printed) when it is missing."""
    if len(sys.argv) != 2:
        print(doc, file=sys.stderr)
        return None
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    return out


def main():
    out = out_dir_arg(__doc__)
    if out is None:
        return 2

    import transformers
    from transformers import CLIPTokenizer, T5TokenizerFast

    try:
        import ftfy  # noqa: F401
        have_ftfy = True
    except ImportError:
        have_ftfy = False

    curated = curated_texts()
    sweep = unicode_sweep_texts()
    ref = {"clip": [], "t5": [],
           "meta": {"transformers": transformers.__version__, "ftfy": have_ftfy,
                    "python_unicode": unicodedata.unidata_version}}

    # --- CLIP ---------------------------------------------------------------------------------
    clip_variants = [
        ("clip_default", dict(corpus=DEFAULT_CORPUS)),
        ("clip_multilingual", dict(corpus=DEFAULT_CORPUS + EXTRA_CORPUS, num_merges=1500)),
    ]
    for name, kw in clip_variants:
        vocab, merges = build_clip_bpe(os.path.join(out, name), **kw)
        tok = CLIPTokenizer(vocab, merges)
        assert tok.pad_token == "<|endoftext|>", tok.pad_token
        cases = encode_cases(tok, curated, CLIP_MAX)
        cases += encode_cases(tok, curated[:40], 16)  # short max_length truncation
        if name == "clip_multilingual":
            cases += encode_cases(tok, sweep)
        ref["clip"].append({"name": name, "vocab": vocab, "merges": merges,
                            "pad_id": tok.pad_token_id, "bos_id": tok.bos_token_id,
                            "eos_id": tok.eos_token_id, "vocab_size": tok.vocab_size, "cases": cases})

    # Real CLIP vocabulary (FLUX's tokenizer/). A download failure is an error, not a skip.
    try:
        gz = fetch_clip_bpe()
    except RealVocabError as e:
        print(f"ERROR: real CLIP vocabulary unavailable: {e}", file=sys.stderr)
        return 3
    vocab, merges = build_real_clip(os.path.join(out, "clip_real"), gz)
    tok = CLIPTokenizer(vocab, merges)
    assert (tok.vocab_size, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == \
        (49408, 49406, 49407, 49407), (tok.vocab_size, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    # sanity: well-known ids of the real vocabulary
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407], \
        tok("a photo of a cat").input_ids
    real = real_vocab_texts()
    cases = encode_cases(tok, real, CLIP_MAX)
    cases += encode_cases(tok, real)               # untruncated (long prompts > 77 tokens in full)
    cases += encode_cases(tok, real[:30], 16)      # short max_length truncation
    cases += encode_cases(tok, curated, CLIP_MAX)  # the generic corpus on the real vocabulary too
    ref["clip"].append({"name": "clip_real", "vocab": vocab, "merges": merges,
                        "pad_id": tok.pad_token_id, "bos_id": tok.bos_token_id,
                        "eos_id": tok.eos_token_id, "vocab_size": tok.vocab_size, "cases": cases,
                        "real_vocab": True, "open_clip_version": OPEN_CLIP_VERSION,
                        "bpe_sha256": CLIP_BPE_SHA256,
                        "long_cases": sum(len(tok(t).input_ids) > CLIP_MAX for t in real)})

    # --- T5 -------------------------------------------------------------------------------------
    # C++ T5Tokenizer::Load(dir/spiece.model) follows dir/tokenizer.json when present (as
    # T5TokenizerFast.from_pretrained(dir) does) and otherwise matches T5TokenizerFast(vocab_file=...).
    def t5_from_dir(name, src_model, make_json=None, **kw):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        T5TokenizerFast(vocab_file=src_model, **kw).save_pretrained(d)
        if make_json is not None:
            path = os.path.join(d, "tokenizer.json")
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            make_json(j)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False)
        return os.path.join(d, "spiece.model"), T5TokenizerFast.from_pretrained(d)

    def old_style_json(j):
        # tokenizer.json as written by older transformers/tokenizers (like FLUX's tokenizer_2): no Strip,
        # runs of spaces collapse to " ", Metaspace in the pre-0.14 add_prefix_space format.
        norms = j["normalizer"]["normalizers"]
        j["normalizer"]["normalizers"] = [norms[0], {"type": "Replace", "pattern": {"Regex": " {2,}"},
                                                     "content": " "}]
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}

    def whitespace_split_json(j):
        # the other common T5 layout: Sequence[WhitespaceSplit, Metaspace], normaliser Precompiled only
        j["normalizer"]["normalizers"] = j["normalizer"]["normalizers"][:1]
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u2581", "str_rep": "\u2581", "add_prefix_space": True}]}

    def whitespace_split_first_json(j):
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]}

    base = build_t5_spm(os.path.join(out, "t5_default"), corpus=DEFAULT_CORPUS)
    multi = build_t5_spm(os.path.join(out, "t5_multilingual"), corpus=DEFAULT_CORPUS + EXTRA_CORPUS,
                         vocab_size=800)
    t5_variants = [
        ("t5_default", base, T5TokenizerFast(vocab_file=base), False),
        ("t5_multilingual", multi, T5TokenizerFast(vocab_file=multi), True),
        ("t5_json_always", *t5_from_dir("t5_json_always", multi, add_prefix_space=True), True),
        ("t5_json_first", *t5_from_dir("t5_json_first", multi, add_prefix_space=True, legacy=False), False),
        ("t5_json_never", *t5_from_dir("t5_json_never", base), False),
        ("t5_json_old_style", *t5_from_dir("t5_json_old_style", multi, make_json=old_style_json), True),
        ("t5_json_wssplit", *t5_from_dir("t5_json_wssplit", multi, make_json=whitespace_split_json), True),
        ("t5_json_wssplit_first", *t5_from_dir("t5_json_wssplit_first", base,
                                               make_json=whitespace_split_first_json), False),
    ]
    for name, model, tok, with_sweep in t5_variants:
        pre = json.loads(tok.backend_tokenizer.to_str())["pre_tokenizer"]
        cases = encode_cases(tok, curated, T5_MAX)
        cases += encode_cases(tok, curated, 77)
        cases += encode_cases(tok, curated[:40], 8)
        if with_sweep:
            cases += encode_cases(tok, sweep)
        ref["t5"].append({"name": name, "model": model, "pad_id": tok.pad_token_id,
                          "eos_id": tok.eos_token_id, "pre_tokenizer": pre, "cases": cases})

    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=True)
    n = sum(len(v["cases"]) for k in ("clip", "t5") for v in ref[k])
    print(f"wrote {n} reference cases to {out}/reference.json (ftfy={have_ftfy})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
