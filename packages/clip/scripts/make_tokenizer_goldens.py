#!/usr/bin/python3
"""Reference token ids for @kiln/clip's golden tests.

This is a port of OpenAI CLIP's `clip/simple_tokenizer.py` (MIT licence,
Copyright (c) 2021 OpenAI, https://github.com/openai/CLIP), which is also what
Hugging Face's `CLIPTokenizer` (the tokenizer of Stable Diffusion 1.x) implements.
It is kept line-for-line close to upstream so that it can be compared by eye.

The one difference from upstream: `ftfy.fix_text` is not available here (no PyPI),
so `basic_clean` skips it. Every prompt below was chosen so that ftfy is a no-op on
it (text already NFC; no mojibake, curly quotes, ligatures, full-width forms,
control or terminal-escape characters; HTML escaped at most twice, because ftfy's
own "auto" unescape would add a third pass on text without a literal '<').
Prompts that differ from upstream only because ftfy is absent: none.

Needs Debian's python3-regex (the `regex` module, for \\p{L} / \\p{N}).
Run:  /usr/bin/python3 packages/clip/scripts/make_tokenizer_goldens.py
Writes packages/clip/test/fixtures/tokenizer-goldens.json.
"""
import gzip
import hashlib
import html
import json
import os
import sys
import unicodedata
from functools import lru_cache

import regex as re

HERE = os.path.dirname(os.path.abspath(__file__))
# The vocabulary shipped in the package (copied from openai/CLIP, MIT: data/LICENSE).
BPE_PATH = os.path.join(HERE, "..", "data", "bpe_simple_vocab_16e6.txt.gz")
OUT_PATH = os.path.join(HERE, "..", "test", "fixtures", "tokenizer-goldens.json")


@lru_cache()
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~")+1))+list(range(ord("¡"), ord("¬")+1))+list(range(ord("®"), ord("ÿ")+1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8+n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


def get_pairs(word):
    pairs = set()
    prev_char = word[0]
    for char in word[1:]:
        pairs.add((prev_char, char))
        prev_char = char
    return pairs


def basic_clean(text):
    # upstream: text = ftfy.fix_text(text)   (not available, see header)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r'\s+', ' ', text)
    text = text.strip()
    return text


class SimpleTokenizer(object):
    def __init__(self, bpe_path: str = BPE_PATH):
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        merges = gzip.open(bpe_path).read().decode("utf-8").split('\n')
        merges = merges[1:49152-256-2+1]
        merges = [tuple(merge.split()) for merge in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v+'</w>' for v in vocab]
        for merge in merges:
            vocab.append(''.join(merge))
        vocab.extend(['<|startoftext|>', '<|endoftext|>'])
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {'<|startoftext|>': '<|startoftext|>', '<|endoftext|>': '<|endoftext|>'}
        self.pat = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", re.IGNORECASE)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + ( token[-1] + '</w>',)
        pairs = get_pairs(word)

        if not pairs:
            return token+'</w>'

        while True:
            bigram = min(pairs, key = lambda pair: self.bpe_ranks.get(pair, float('inf')))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except:
                    new_word.extend(word[i:])
                    break

                if word[i] == first and i < len(word)-1 and word[i+1] == second:
                    new_word.append(first+second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            new_word = tuple(new_word)
            word = new_word
            if len(word) == 1:
                break
            else:
                pairs = get_pairs(word)
        word = ' '.join(word)
        self.cache[token] = word
        return word

    # Not upstream: encode() split in two so the BPE strings can be recorded too.
    def tokenize(self, text):
        bpe_tokens = []
        text = whitespace_clean(basic_clean(text)).lower()
        for token in re.findall(self.pat, text):
            token = ''.join(self.byte_encoder[b] for b in token.encode('utf-8'))
            bpe_tokens.extend(self.bpe(token).split(' '))
        return bpe_tokens

    def encode(self, text):
        return [self.encoder[t] for t in self.tokenize(text)]

    def decode(self, tokens):
        text = ''.join([self.decoder[token] for token in tokens])
        text = bytearray([self.byte_decoder[c] for c in text]).decode('utf-8', errors="replace").replace('</w>', ' ')
        return text


LONG_1 = (
    "a highly detailed matte painting of a gigantic ancient castle on a floating island above the clouds, "
    "surrounded by waterfalls and flying dragons at golden hour, volumetric lighting, god rays, "
    "intricate architecture, ornate towers, lush vegetation, tiny villagers walking on stone bridges, "
    "epic fantasy concept art by greg rutkowski, james gurney and thomas kinkade, trending on artstation, "
    "8k resolution, unreal engine 5 render, octane render, sharp focus, award winning masterpiece"
)
LONG_2 = " ".join(["red apple, green pear, yellow banana 🍌"] * 12)

PROMPTS = [
    "a photo of sks dog",
    "a photograph of an astronaut riding a horse",
    "A Photo Of A CAT",
    "ALL CAPS SHOUTING!!!",
    "hello, world!",
    "what?! no... yes; maybe: (really) [sure] {ok} <fine> \"quoted\" 'single'",
    "it's a dog's life, isn't it? we're here, they've gone, I'm fine, you'll see, he'd know",
    "IT'S DON'T WE'RE THEY'LL",
    "don't stop believin'",
    "1234567890 3.14 1,000,000 2024-01-01 100%",
    "café crème brûlée, naïve résumé, jalapeño, Zürich",
    "Ünïcödé ÀÉÎÕÜ ÇA VA",
    "東京の夜景、美しい街並み",
    "一只可爱的猫在草地上",
    "한국어 텍스트 테스트",
    "Ελληνικά ΟΔΟΣ και русский текст",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "a cute cat 🐱 with a rainbow 🌈✨",
    "👨‍👩‍👧 family emoji, 👍🏽 thumbs, ❤️ heart",
    "emoji only 🔥🔥🔥 and numbers 42",
    "   leading and trailing   spaces\t\tand\n\nnewlines  ",
    "a\u00a0photo\u2003of\u3000a dog\u2028in a box",
    "salt &amp; pepper",
    "&lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;single&#39; &#x263A; &copy; 2024",
    "&amp;amp; double escaped &amp;lt;tag&amp;gt;",
    "https://example.com/?a=1&copy=2&lang=en user@example.com",
    "masterpiece, best quality, ultra-detailed, 8k, (photorealistic:1.4), RAW photo",
    "portrait of a woman, by greg rutkowski and alphonse mucha, trending on artstation",
    "Photo_of-a dog/cat (1girl:1.2) [blue] {x|y} a+b=c #hashtag @mention ~tilde",
    "<|startoftext|>a cat<|endoftext|>",
    "it'\u017f a long s",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaa hmmmmmmm zzz",
    "",
    "   ",
    LONG_1,
    LONG_2,
]

# U+0085 is whitespace to `regex` but ftfy would first turn it into an ellipsis (fix_c1_controls),
# so it is tested in TypeScript, not here.
# html.unescape edge cases: numeric references, legacy names without ';', longest-prefix rule.
UNESCAPE_CASES = [
    "&amp; &AMP; &amp &ampx; &notit; &notin; &not=1",
    "&#0; &#13; &#128; &#150; &#x110000; &#xD800; &#1; &#xFFFE; &#128512; &#x1F600",
    "&lt;&gt&quot;&apos;&nbsp;&NotNestedGreaterGreater; &unknown; & ; &#; &#x;",
    "&" + "a" * 40 + ";",
    "&copy2024 &copy;2024 &frac12 &frac12; &fjlig;",
]


def main():
    for p in PROMPTS:
        if unicodedata.normalize("NFC", p) != p:
            sys.exit(f"prompt is not NFC (ftfy would change it): {p!r}")
    tok = SimpleTokenizer()
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    cases = []
    for p in PROMPTS:
        tokens = tok.tokenize(p)
        ids = tok.encode(p)
        # Stable Diffusion 1.x: CLIPTokenizer(..., padding="max_length", max_length=77, truncation=True)
        padded = ([sot] + ids[:75] + [eot] + [eot] * 77)[:77]
        cases.append({
            "prompt": p,
            "tokens": tokens,
            "ids": ids,
            "input_ids": padded,
            "decoded": tok.decode(ids).strip(),
        })
    # What transformers' CLIPTokenizer.save_vocabulary writes for this vocabulary.
    vocab_json = json.dumps(tok.encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    merges_txt = "#version: 0.2\n" + "".join(
        " ".join(pair) + "\n" for pair, _ in sorted(tok.bpe_ranks.items(), key=lambda kv: kv[1]))
    out = {
        "generator": "packages/clip/scripts/make_tokenizer_goldens.py (port of OpenAI CLIP simple_tokenizer.py, without ftfy)",
        "python": sys.version.split()[0],
        "regex": re.__version__,
        "vocab_size": len(tok.encoder),
        "hf_vocab_json_sha256": hashlib.sha256(vocab_json.encode("utf-8")).hexdigest(),
        "hf_merges_txt_sha256": hashlib.sha256(merges_txt.encode("utf-8")).hexdigest(),
        "cases": cases,
        "html_unescape": [{"input": s, "output": html.unescape(s)} for s in UNESCAPE_CASES],
    }
    with open(OUT_PATH, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(OUT_PATH)}")


if __name__ == "__main__":
    main()
