"""Builds tokenizer.json files of several model families with the `tokenizers` library and records
what that library encodes and decodes, for the C++ tokenizer's oracle test (tokenizer_test.cpp).

Each family is trained on a small varied corpus with that family's normalizer, pre-tokenizer,
decoder and post-processor settings (Llama-3 and gpt-oss byte-level BPE with their Split regexes,
Qwen2 with NFC, Llama-2 SentencePiece-style BPE with Prepend/Replace and byte fallback, the
Metaspace form of the same, and GPT-2/RoBERTa byte-level BPE with its own regex and prefix space). Writes <out>/<family>.tokenizer.json and <out>/<family>.expected.json.

Usage: tokenizer_oracle.py OUT_DIR
"""
import json
import os
import random
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}", r" ?[^\s\p{L}\p{N}]+[\r\n/]*", r"\s*[\r\n]+", r"\s+(?!\S)", r"\s+",
])

BASE_LINES = [
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; they'll arrive at 17:30, won't they?",
    "I'M SHOUTING, you're WHISPERING and we'VE been here since 1999.",
    "Größere Übungen für Änderungen: Straße, Fußgänger, Maß.",
    "Größere Übungen (decomposed): Gro\u0308ße, U\u0308bung, A\u0308nderung, e\u0301te\u0301.",
    "Le cœur a ses raisons que la raison ne connaît point. Ça va? Très bien, merci!",
    "Москва — столица России. Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",
    "机器学习是人工智能的一个分支。我们今天学习分词器的实现。",
    "日本語のテキスト：東京は日本の首都です。ひらがな、カタカナ、漢字。",
    "한국어 문장입니다. 토크나이저는 빠르고 정확해야 합니다.",
    "مرحبا بالعالم! هذه جملة باللغة العربية.",
    "नमस्ते दुनिया! यह हिंदी में एक वाक्य है।",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ 🚀✨ and text between 🎉 them.",
    "Numbers: 0 12 345 6789 3.14159 -42 1e10 1,000,000 ١٢٣ ۴۵۶ ½ ² Ⅻ",
    "def tokenize(text: str) -> list[int]:\n    return [ord(c) for c in text if c != ' ']\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];  // dot product\n}\n",
    "    indented    with     many      spaces\t\ttabs\t and\n\n\nnewlines\r\n",
    "https://example.com/path?query=value&x=1#frag user@mail.org C:\\Windows\\System32",
    "<html><body><p class=\"x\">Hello, <b>world</b>!</p></body></html>",
    "Mixed: naïve café résumé coöperate Ångström ﬁnancial ﬂow",
]

TEST_EXTRA = [
    "",
    " ",
    "a",
    "                                                            long run of spaces",
    "trailing spaces          ",
    "\n\n\n\n\n\n\n\n",
    "\t \t \t \n \r\n  \u00a0 \u3000 \u2003 whitespace zoo",
    "Rare characters: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ 𓀀 ∮ E⋅da = Q ⌘ ✓ ☃ ♞ 🦀🐍",
    "Unseen script: ᚠᛇᚻ᛫ᛒᛦᚦ ქართული ენა ትግርኛ ភាសាខ្មែរ",
    "x" * 300,
    "1234567890" * 20,
    "😀" * 40,
    "Zero\u200bwidth\u200djoiners\ufeffand\u00adsoft hyphen",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ｶﾀｶﾅ",
    "Hangul jamo (decomposed): \u1100\u1161\u11a8 vs 각",
    "It's DON'T CAN'T Y'ALL 'tis o'clock rock'n'roll",
    " " * 5000 + "x",
    "\n" * 2000 + "b" + "\t" * 1000,
    "a" * 5000,
    "1" * 3000,
    "\u00e9" * 2000 + "e\u0301" * 1000,
    "\U0001F600" * 1000,
    "ab " * 2000,
]


# Random texts assembled from fragments that stress regex classes, normalization and merges.
FRAGMENTS = [" ", "  ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "a", "The", "the", "DOG", "'s", "'S",
             "'ll", "n't", "caf\u00e9", "cafe\u0301", "\u0301", "\u0308", "A\u030a", "\u212b", "\ufb01", "\u00bd",
             "7", "42", "1234", "3.14", "\u0663", "\uff11", "\u2167", ".", ",", "!?", "...", "--", "(", ")", "{", "}",
             "[]", "<", ">", "/", "\\", "_", "#", "@", "\u2014", "\u00ab", "\u00bb", "\u4e2d\u6587", "\u65e5\u672c",
             "\u30ab\u30bf", "\ud55c\uad6d", "\u0645\u0631\u062d\u0628\u0627", "\u0928\u092e\u0938\u094d\u0924\u0947",
             "\u041f\u0440\u0438\u0432\u0435\u0442", "\u03b1\u03b2\u03b3", "\U0001F600", "\U0001F44D\U0001F3FD",
             "\u2764\ufe0f", "\U0001F1E9\U0001F1EA", "\u200d", "\ufeff", "\U0001D518", "\U00013000", "x", "xx", "\u2581",
             "<tool_call>", "</tool_call>", "<tool", "\u0120", "\u010a", "<0x41>"]


def random_texts(specials, count=400, seed=1234):
    rng = random.Random(seed)
    pool = FRAGMENTS + specials
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 30))) for _ in range(count)]


def family_specials(family):
    if family in ("llama3", "gptoss"):
        return ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>", "<|reserved_special_token_0|>"]
    if family == "qwen2":
        return ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if family == "gpt2":
        return ["<s>", "</s>", "<pad>"]
    return ["<unk>", "<s>", "</s>"]


def special_texts(family):
    sp = family_specials(family)
    return [
        f"{sp[0]}Hello{sp[1]}",
        f"  {sp[-1]}  spaced {sp[0]} specials {sp[-1]}\n",
        f"{sp[1]}{sp[1]}{sp[2]}back to back",
        f"partial {sp[1][:-1]} not special {sp[0][1:]}",
        f"user\n{sp[-1]}assistant\nThe answer is 42.{sp[-2]}",
        "an added word: <tool_call>{\"name\": \"f\"}</tool_call> done",
    ]


def train_corpus():
    lines = []
    for k in range(30):
        for i, line in enumerate(BASE_LINES):
            lines.append(line if k % 2 == 0 else line.lower() + f" {k * 37 + i}")
    return lines


def byte_level(pattern, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok, trainer


def build(family, corpus, vocab_size=1200):
    specials = family_specials(family)
    if family == "gpt2":  # GPT-2/RoBERTa: the ByteLevel pre-tokenizer's own regex and prefix space
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=specials)
        tok.train_from_iterator(corpus, trainer)
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                          ("<s>", tok.token_to_id("<s>")))
        return tok
    if family in ("llama3", "gptoss", "qwen2"):
        pattern = {"llama3": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN, "gptoss": O200K_PATTERN}[family]
        tok, trainer = byte_level(pattern, vocab_size)
        if family == "qwen2":
            tok.normalizer = normalizers.NFC()
        tok.train_from_iterator(corpus, trainer)
        tok.add_special_tokens(specials)
        if family == "llama3":
            tok.post_processor = processors.Sequence([
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(single=f"{specials[0]} $A", pair=f"{specials[0]} $A {specials[0]} $B",
                                              special_tokens=[(specials[0], tok.token_to_id(specials[0]))]),
            ])
        else:
            tok.post_processor = processors.ByteLevel(trim_offsets=False)
        # Qwen2-style non-special added tokens (normalized, matched after NFC).
        tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=True),
                        AddedToken("</tool_call>", special=False, normalized=False)])
        if family == "gptoss":  # the strip and whole-word options of added tokens
            tok.add_tokens([AddedToken("DOG", single_word=True, normalized=False),
                            AddedToken("<tool", lstrip=True, rstrip=True, normalized=False)])
        return tok
    # SentencePiece-converted BPE: byte fallback tokens in the model vocabulary, a small alphabet.
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + 256, min_frequency=2, show_progress=False,
                                  special_tokens=specials + byte_tokens, limit_alphabet=120)
    tok.train_from_iterator(corpus, trainer)
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in byte_tokens]
    tok = Tokenizer.from_str(json.dumps(data))
    if family == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    else:  # Mistral-7B / Llama-2 after the legacy=False conversion
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="first"),
                                         decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=True),
                    AddedToken("</tool_call>", special=False, normalized=False)])
    return tok


FAMILIES = ["llama3", "qwen2", "gptoss", "llama2", "mistral", "gpt2"]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    corpus = train_corpus()
    for family in FAMILIES:
        tok = build(family, corpus)
        texts = (BASE_LINES + TEST_EXTRA + special_texts(family) + ["\n".join(BASE_LINES)] +
                 random_texts(family_specials(family)))
        cases = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=True).ids
            cases.append({
                "text": text,
                "ids": ids,
                "ids_plain": tok.encode(text, add_special_tokens=False).ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            })
        # Ids the encoder never produces: byte tokens out of context, every id once, unknown ids.
        every = list(range(tok.get_vocab_size(with_added_tokens=True) + 2))
        decode_only = [every, every[::-1], every[3:40], [5, 6, 7] * 3]
        tok.save(os.path.join(out, f"{family}.tokenizer.json"))
        with open(os.path.join(out, f"{family}.expected.json"), "w", encoding="utf-8") as f:
            json.dump({
                "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                "cases": cases,
                "decode_only": [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                 "decoded_skip": tok.decode(ids, skip_special_tokens=True)} for ids in decode_only],
            }, f, ensure_ascii=True)
    print(f"wrote {len(FAMILIES)} tokenizers to {out}")


if __name__ == "__main__":
    main()
