import { beforeAll, describe, expect, it } from 'vitest';

import { ArgumentError } from '@kiln/tensor-core';
import { CLIPTokenizer, cleanText, preTokenize } from '../src/index.js';
import { sharedTokenizer } from './helpers.js';

let tok: CLIPTokenizer;
beforeAll(async () => {
  tok = await sharedTokenizer();
});

const SOT = 49406;
const EOT = 49407;

describe('vocabulary built from the OpenAI merges file', () => {
  it('has 49 408 ids with the special tokens last', () => {
    expect(tok.vocabSize).toBe(49408);
    expect(tok.length).toBe(49408);
    expect(tok.bosTokenId).toBe(SOT);
    expect(tok.eosTokenId).toBe(EOT);
    expect(tok.padTokenId).toBe(EOT);
    expect(tok.modelMaxLength).toBe(77);
    expect(tok.tokenToId('!')).toBe(0);
    expect(tok.tokenToId('!</w>')).toBe(256);
    expect(tok.idToToken(49405)).toBeDefined();
    expect(tok.idToToken(49408)).toBeUndefined();
  });
});

describe('encode: padding and truncation', () => {
  it('pads a short prompt with the end token to 77', () => {
    const ids = tok.encode('a photo of sks dog');
    expect(ids.slice(0, 7)).toEqual([SOT, 320, 1125, 539, 48136, 1929, EOT]);
    expect(ids).toHaveLength(77);
    expect(ids.slice(7).every((id) => id === EOT)).toBe(true);
  });

  it('encodes an empty prompt as start, end and padding', () => {
    expect(tok.encode('')).toEqual([SOT, ...Array<number>(76).fill(EOT)]);
    expect(tok.encode('', { padding: false })).toEqual([SOT, EOT]);
  });

  it('truncates long prompts keeping the end token at index 76', () => {
    const prompt = Array.from({ length: 100 }, (_, i) => `word${i % 10}`).join(' ');
    const full = tok.encode(prompt, { padding: false, truncation: false });
    expect(full.length).toBeGreaterThan(77);
    const ids = tok.encode(prompt);
    expect(ids).toHaveLength(77);
    expect(ids[0]).toBe(SOT);
    expect(ids[76]).toBe(EOT);
    expect(ids.slice(0, 76)).toEqual(full.slice(0, 76));
    expect(tok.encode(prompt, { padding: false })).toEqual(ids);
  });

  it('honours maxLength for both truncation and padding', () => {
    expect(tok.encode('a photo of sks dog', { maxLength: 4 })).toEqual([SOT, 320, 1125, EOT]);
    expect(tok.encode('a dog', { maxLength: 6 })).toEqual([SOT, 320, 1929, EOT, EOT, EOT]);
    expect(tok.encode('a dog', { maxLength: 2 })).toEqual([SOT, EOT]);
    const long = 'dog '.repeat(200);
    expect(tok.encode(long, { maxLength: 154 })).toHaveLength(154);
    expect(tok.encode(long, { maxLength: 154 })[153]).toBe(EOT);
  });

  it('can leave out the special tokens', () => {
    expect(tok.encode('a dog', { addSpecialTokens: false, padding: false })).toEqual([320, 1929]);
    expect(tok.encode('a dog', { addSpecialTokens: false, maxLength: 4 })).toEqual([320, 1929, EOT, EOT]);
  });

  it('rejects a maxLength that cannot hold the special tokens', () => {
    expect(() => tok.encode('a', { maxLength: 1 })).toThrow(ArgumentError);
    expect(() => tok.encode('a', { maxLength: 3.5 })).toThrow(ArgumentError);
  });

  it('rejects non-string input with a clear error', () => {
    expect(() => tok.encode(42 as unknown as string)).toThrow(/expected a string/);
  });
});

describe('decode', () => {
  it('round-trips plain lower-case text', () => {
    for (const text of ['a photo of sks dog', 'an astronaut riding a horse on mars', 'café crème 東京 🐱']) {
      expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
    }
  });

  it('gives text that encodes to the same ids', () => {
    for (const text of ["Hello, World! It's 3.14", 'masterpiece, (best quality:1.2), 8k', '&lt;tag&gt; &amp; more']) {
      const ids = tok.encode(text);
      const again = tok.encode(tok.decode(ids, { skipSpecialTokens: true }));
      expect(again).toEqual(ids);
    }
  });

  it('keeps special tokens unless asked to skip them', () => {
    const ids = tok.encode('a dog', { padding: false });
    expect(tok.decode(ids)).toBe('<|startoftext|>a dog <|endoftext|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('a dog');
  });

  it('replaces invalid UTF-8 with U+FFFD and rejects unknown ids', () => {
    // 'ðŁ' are the first two bytes of a 4-byte emoji: incomplete on their own.
    const partial = tok.tokenToId('ðŁ');
    expect(partial).toBeDefined();
    expect(tok.decode([partial!])).toBe('\ufffd');
    expect(() => tok.decode([123456])).toThrow(ArgumentError);
    expect(() => tok.decode([-1])).toThrow(ArgumentError);
  });

  it('accepts typed arrays', () => {
    expect(tok.decode(Int32Array.from(tok.encode('a dog')), { skipSpecialTokens: true })).toBe('a dog');
  });
});

describe('text clean-up beyond the golden prompts', () => {
  it('applies NFC, so decomposed accents encode like precomposed ones', () => {
    expect(tok.encode('cafe\u0301 cre\u0300me')).toEqual(tok.encode('café crème'));
    expect(cleanText('  A  Photo &amp;\tCafe\u0301 ')).toBe('a photo & café');
  });

  // Expected ids from /usr/bin/python3 with the golden script's SimpleTokenizer (no ftfy).
  it.each([
    ['a\u0345b dog', [320, 321, 1929]],
    ['dog\x85in', [1929, 530]],
    ['a\ufeffb', [320, 171, 119, 379, 321]],
    ['x\x1cy', [343, 472, 344]],
    ['\x1c dog \x1c', [1929]],
    ['<|ſtartoftext|>', [27, 91, 129, 123, 2002, 6659, 18169, 91, 285]],
    ['ΑΣ ΣΑ', [138, 109, 139, 480, 139, 225, 138, 365]],
    ['İstanbul', [328, 16384, 11231]],
    ['photo</w>of', [1125, 34308, 342, 285, 539]],
  ] as const)('matches Python on the edge case %j', (text, ids) => {
    expect(tok.encode(text, { padding: false, addSpecialTokens: false })).toEqual(ids);
  });

  it('splits digits one by one and keeps contractions', () => {
    expect(preTokenize("it's 42!")).toEqual(['it', "'s", '4', '2', '!']);
  });
});

describe('added tokens (textual inversion)', () => {
  it('returns new ids after the vocabulary and tokenizes each to one id', async () => {
    const t = await CLIPTokenizer.fromOpenAI();
    expect(t.addTokens(['<sks>', '<cat-toy>'])).toEqual([49408, 49409]);
    expect(t.length).toBe(49410);
    expect(t.vocabSize).toBe(49408);
    expect(t.addTokens(['<sks>', 'dog</w>', '<|endoftext|>'])).toEqual([49408, 1929, EOT]);
    expect(t.tokenize('a photo of <sks> dog')).toEqual(['a</w>', 'photo</w>', 'of</w>', '<sks>', 'dog</w>']);
    expect(t.encode('a photo of <sks> dog', { padding: false })).toEqual([SOT, 320, 1125, 539, 49408, 1929, EOT]);
    expect(t.encode('<sks><cat-toy>on the<sks>', { padding: false })).toEqual([SOT, 49408, 49409, 525, 518, 49408, EOT]);
    expect(t.decode(t.encode('a <sks> on a <cat-toy>'), { skipSpecialTokens: true })).toBe('a <sks> on a <cat-toy>');
    expect(t.getAddedVocab()).toEqual(
      new Map([
        ['<sks>', 49408],
        ['<cat-toy>', 49409],
      ]),
    );
    expect(t.getVocab().get('<cat-toy>')).toBe(49409);
    // Case-sensitive, as in transformers: '<SKS>' is ordinary text.
    expect(t.encode('<SKS>', { padding: false })).not.toContain(49408);
  });

  it('prefers the longest added token and leaves the shared tokenizer untouched', async () => {
    const t = await CLIPTokenizer.fromOpenAI();
    const [short, long] = t.addTokens(['<s>', '<s>-2']);
    expect(t.encode('<s>-2 <s>', { padding: false, addSpecialTokens: false })).toEqual([long, short]);
    expect(tok.length).toBe(49408);
    expect(() => t.addTokens([''])).toThrow(ArgumentError);
  });

  it('counts added tokens towards truncation', async () => {
    const t = await CLIPTokenizer.fromOpenAI();
    const [id] = t.addTokens(['<x>']);
    const ids = t.encode('<x> '.repeat(100));
    expect(ids).toEqual([SOT, ...Array<number>(75).fill(id!), EOT]);
  });
});

describe('performance', () => {
  it('encodes a 77-token prompt in well under a millisecond once warm', () => {
    const prompt =
      'a highly detailed matte painting of a gigantic ancient castle on a floating island above the clouds, surrounded by waterfalls and flying dragons at golden hour, volumetric lighting, god rays, intricate architecture, ornate towers, lush vegetation';
    expect(tok.encode(prompt, { padding: false, truncation: false }).length).toBeGreaterThan(40);
    for (let i = 0; i < 200; i++) tok.encode(prompt);
    const n = 2000;
    const start = performance.now();
    for (let i = 0; i < n; i++) tok.encode(prompt);
    const perCallMs = (performance.now() - start) / n;
    expect(perCallMs).toBeLessThan(0.5);
  });
});
