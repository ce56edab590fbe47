import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

import { beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, KilnError } from '@kiln/tensor-core';

import {
  BytePairEncoder,
  CLIPConfigError,
  CLIPTokenizer,
  TokenizerError,
  MAX_ENCODE_LENGTH,
  bytesToUnicode,
  cleanText,
  parseAddedTokensJson,
  parseCLIPTextConfig,
  parseOpenAIMerges,
  parseVocabJson,
  preTokenize,
} from '../src/index.js';
import { MERGES_GZ, sharedTokenizer } from './helpers.js';

let tok: CLIPTokenizer;
let merges: ReturnType<typeof parseOpenAIMerges>['merges'];
beforeAll(async () => {
  tok = await sharedTokenizer();
  merges = parseOpenAIMerges(gunzipSync(readFileSync(MERGES_GZ)).toString('utf8')).merges;
});

const SOT = 49406;
const EOT = 49407;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('lengths that cannot be allocated are refused or read as "no limit"', () => {
  it('model_max_length 9007199254740991 in tokenizer_config.json reads as no limit (77)', () => {
    const files = tok.toHuggingFaceFiles();
    const config = { ...(JSON.parse(files['tokenizer_config.json']!) as object), model_max_length: 9007199254740991 };
    const t = CLIPTokenizer.fromHuggingFaceFiles({ ...files, 'tokenizer_config.json': JSON.stringify(config) });
    expect(t.modelMaxLength).toBe(77);
    expect(t.encode('a dog')).toHaveLength(77);
  });

  it('encode with maxLength 2**31 is an ArgumentError (a KilnError), padded or not', () => {
    for (const padding of [true, false]) {
      const e = thrown(() => tok.encode('a dog', { maxLength: 2 ** 31, padding }));
      expect(e).toBeInstanceOf(ArgumentError);
      expect(e).toBeInstanceOf(KilnError);
      expect((e as Error).message).toMatch(/maxLength/);
    }
    expect(() => new CLIPTokenizer({ vocab: tok.getVocab(), merges: [], modelMaxLength: 2 ** 31 })).toThrow(/modelMaxLength/);
    expect(tok.encode('a dog', { maxLength: MAX_ENCODE_LENGTH, padding: false })).toEqual([SOT, 320, 1929, EOT]);
  });

  it('every error of encode, decode and addTokens is a KilnError', async () => {
    const t = await CLIPTokenizer.fromOpenAI();
    for (const fn of [
      () => t.encode(42 as unknown as string),
      () => t.encode('a', { maxLength: 1 }),
      () => t.decode([123456]),
      () => t.addTokens(['']),
    ]) {
      expect(thrown(fn)).toBeInstanceOf(KilnError);
    }
  });
});

describe('long input', () => {
  it("encodes '中' × 5e6 (one 15-million-byte word) without overflowing the stack", () => {
    const start = performance.now();
    const ids = tok.encode('中'.repeat(5e6));
    const ms = performance.now() - start;
    expect(ids).toEqual(tok.encode('中'.repeat(100)));
    expect(ids.slice(0, 5)).toEqual([SOT, 19759, 255, 19759, 255]); // 'ä¸' 'Ń' per character
    expect(ms).toBeLessThan(20_000);
  });

  it('pre-tokenizes runs longer than its regex window like the plain pattern', () => {
    const plain = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/gu;
    for (const text of ['a'.repeat(9000), `x${'é'.repeat(8191)}9${'!'.repeat(4097)}'s`, `${'𝒜'.repeat(5000)} ${'-'.repeat(4096)}a`]) {
      expect(preTokenize(text)).toEqual(text.match(plain));
    }
  });

  it('stops reading a 10 MB prompt once 77 ids exist', () => {
    const prompt = 'a photo of a dog, '.repeat(600_000);
    expect(prompt.length).toBeGreaterThan(10_000_000);
    tok.encode(prompt.slice(0, 1000));
    const start = performance.now();
    const ids = tok.encode(prompt);
    const ms = performance.now() - start;
    expect(ids).toEqual(tok.encode(prompt.slice(0, 1000)));
    expect(ms).toBeLessThan(1500); // it read all 10 MB before: 5.3 s here
  });

  it('gives the same tokens chunk by chunk as over the whole text (entities, accents, sigma, CJK)', () => {
    const bytes = new Map(bytesToUnicode());
    const enc = new TextEncoder();
    const bpe = new BytePairEncoder(merges);
    const words = [
      'ΟΔΟΣ',
      'cafe\u0301',
      '&amp;lt;tag&gt;',
      '&amp',
      '東京タワー',
      'üıẞ',
      "it's",
      '42',
      '\u00a0',
      'ﬁ',
      '&#32;x',
      '🐱‍👤',
      'e\u0301\u0323',
      'Σ.',
    ];
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const parts: string[] = [];
    while (parts.join(' ').length < 20_000) parts.push(words[Math.floor(rand() * words.length)]!);
    const text = parts.join(rand() < 0.5 ? ' ' : '  ');
    const oracle = preTokenize(cleanText(text)).flatMap((w) =>
      bpe.encodeWord(Array.from(enc.encode(w), (b) => bytes.get(b)!).join('')).map((p) => tok.tokenToId(p)!),
    );
    expect(tok.encode(text, { truncation: false, padding: false, addSpecialTokens: false })).toEqual(oracle);
  });

  it('merges long words (cut where no merge joins across, on integer ids) exactly as OpenAI bpe()', () => {
    const ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i] as const));
    const bpe = new BytePairEncoder(merges);
    const symbols = bytesToUnicode().map(([, c]) => c);
    const pieces = ['a', 'aa', 'e', 'ab', 'x', '中', 'é', 'th', 'ing', '🐱', 'ö', '1'];
    const enc = new TextEncoder();
    const bytes = new Map(bytesToUnicode());
    let seed = 99;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let n = 0; n < 120; n++) {
      const len = 65 + Math.floor(rand() * 600);
      let word = '';
      if (n % 3 === 0) while (word.length < len) word += symbols[Math.floor(rand() * symbols.length)];
      else if (n % 3 === 1)
        while (word.length < len) word += Array.from(enc.encode(pieces[Math.floor(rand() * pieces.length)]), (b) => bytes.get(b)!).join('');
      else word = 'a'.repeat(len) + (rand() < 0.5 ? 'b' : '');
      const got: string[] = [];
      bpe.forEachSymbol(word, (s) => got.push(s) > 0);
      expect(got, word).toEqual(openAIBpe(ranks, word));
      expect(bpe.encodeWord(word)).toEqual(got);
    }
  });
});

/** A line-for-line port of `SimpleTokenizer.bpe` from openai/CLIP (the oracle). */
function openAIBpe(ranks: ReadonlyMap<string, number>, token: string): string[] {
  let word = [...token.slice(0, -1).split(''), token.slice(-1) + '</w>'];
  for (;;) {
    let best: [string, string] | undefined;
    let bestRank = Infinity;
    for (let i = 0; i < word.length - 1; i++) {
      const r = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (r !== undefined && r < bestRank) [bestRank, best] = [r, [word[i]!, word[i + 1]!]];
    }
    if (best === undefined) break;
    const [first, second] = best;
    const next: string[] = [];
    let i = 0;
    while (i < word.length) {
      const j = word.indexOf(first, i);
      if (j === -1) {
        next.push(...word.slice(i));
        break;
      }
      next.push(...word.slice(i, j));
      i = j;
      if (word[i] === first && i < word.length - 1 && word[i + 1] === second) {
        next.push(first + second);
        i += 2;
      } else {
        next.push(word[i]!);
        i += 1;
      }
    }
    word = next;
    if (word.length === 1) break;
  }
  return word;
}

describe('tokens named like Object.prototype members are kept', () => {
  it('vocab.json and added_tokens.json keep __proto__ and constructor', () => {
    expect(parseVocabJson('{"__proto__": 3, "constructor": 4, "a": 0}')).toEqual(
      new Map([
        ['__proto__', 3],
        ['constructor', 4],
        ['a', 0],
      ]),
    );
    expect(parseAddedTokensJson('{"__proto__": 49408}')).toEqual(new Map([['__proto__', 49408]]));
    expect(() => parseVocabJson('{"__proto__": -1}')).toThrow(/"__proto__"/);
  });

  it('a tokenizer loads, encodes and saves a __proto__ token', () => {
    const files = tok.toHuggingFaceFiles();
    const vocabText = files['vocab.json'].replace(/\n}\n$/, ',\n  "__proto__": 49408\n}\n');
    const t = CLIPTokenizer.fromHuggingFaceFiles({ ...files, 'vocab.json': vocabText, 'added_tokens.json': '{"toString": 49409}' });
    expect(t.tokenToId('__proto__')).toBe(49408);
    expect(t.getVocab().get('__proto__')).toBe(49408);
    expect(t.encode('a toString dog', { padding: false })).toEqual([SOT, 320, 49409, 1929, EOT]);
    const again = CLIPTokenizer.fromHuggingFaceFiles(t.toHuggingFaceFiles());
    expect(again.tokenToId('__proto__')).toBe(49408);
    expect(again.getAddedVocab()).toEqual(new Map([['toString', 49409]]));
  });
});

describe('settings files cannot smuggle fields in through a __proto__ key', () => {
  it('tokenizer_config.json with "__proto__" is a TokenizerError naming the file', () => {
    const files = tok.toHuggingFaceFiles();
    for (const config of [
      '{"__proto__": {"pad_token": "!", "model_max_length": 5}}',
      '{"added_tokens_decoder": {"49408": {"__proto__": {"content": "x"}}}}',
    ]) {
      const e = thrown(() =>
        CLIPTokenizer.fromHuggingFaceFiles(
          { ...files, 'tokenizer_config.json': config },
          { names: { 'tokenizer_config.json': 'sd/tokenizer_config.json' } },
        ),
      );
      expect(e).toBeInstanceOf(TokenizerError);
      expect((e as TokenizerError).file).toBe('sd/tokenizer_config.json');
      expect((e as Error).message).toMatch(/__proto__/);
    }
  });

  it('a CLIP text config with "__proto__" is a CLIPConfigError naming the field', () => {
    const e = thrown(() =>
      parseCLIPTextConfig(JSON.parse('{"__proto__": {"hidden_size": 64, "num_attention_heads": 4}}'), 'te/config.json'),
    );
    expect(e).toBeInstanceOf(CLIPConfigError);
    expect((e as Error).message).toBe('te/config.json: invalid CLIP text config: __proto__: not a config field');
  });
});
