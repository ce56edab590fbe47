import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { KilnError } from '@kiln/tensor-core';
import { skipInit } from '@kiln/nn';

import { CLIPConfigError, CLIPTextModel, CLIPTokenizer, buildVocabFromMerges, parseCLIPTextConfig, type Merge } from '../src/index.js';
import { FIXTURE } from './text-model-fixture.js';

/** xorshift32: fixed, fast, reproducible (as nn's safetensors fuzz test). */
function rng(seed: number): { rand: () => number; int: (n: number) => number; pick: <T>(xs: readonly T[]) => T } {
  let s = seed;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(rand() * n);
  return { rand, int, pick: (xs) => xs[int(xs.length)]! };
}

/** 'ok', the error's class name for a KilnError, or 'other' (a failure of the test). */
function outcome(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return e instanceof KilnError ? e.name : `other: ${String(e)}`;
  }
}

const TOKENS = [
  '0',
  '1',
  '-1',
  '1.5',
  '1e308',
  '9007199254740991',
  '2147483648',
  '"__proto__"',
  '"constructor"',
  'null',
  'true',
  '[]',
  '{}',
  '"',
  ',',
  ':',
  '}',
  ']',
  '"<|endoftext|>"',
  '"!"',
  '\\u0000',
  '#version: 0.2\n',
  '\n',
  ' ',
  'a b',
  '</w>',
];

function mutate(text: string, r: ReturnType<typeof rng>): string {
  const kind = r.int(4);
  if (kind === 0) {
    // Flip a few characters.
    const chars = Array.from(text);
    for (let j = 0, n = 1 + r.int(4); j < n && chars.length > 0; j++) chars[r.int(chars.length)] = String.fromCharCode(r.int(0x3000));
    return chars.join('');
  }
  if (kind === 1) return text.slice(0, r.int(text.length + 1));
  const at = r.int(text.length + 1);
  // Splice a JSON-ish or merges-ish token in, replacing up to 6 characters.
  return text.slice(0, at) + r.pick(TOKENS) + text.slice(at + (kind === 2 ? r.int(7) : 0));
}

// A small vocabulary keeps 2000 loads fast: the 512 byte symbols, a few merges, the specials.
const MERGES: Merge[] = [
  ['t', 'h'],
  ['th', 'e</w>'],
  ['d', 'o'],
  ['do', 'g</w>'],
  ['a', '</w>'],
  ['ä', '¸'],
];

describe('fuzz: tokenizer files', () => {
  it('2000 seeded mutations of vocab.json, merges.txt, tokenizer_config.json and added_tokens.json give a tokenizer or a TokenizerError', () => {
    const base = new CLIPTokenizer({ vocab: buildVocabFromMerges(MERGES), merges: MERGES, addedTokens: { '<sks>': 520 } });
    const files = base.toHuggingFaceFiles();
    const names = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'added_tokens.json'] as const;
    const r = rng(20261129);
    const counts: Record<string, number> = {};
    const start = Date.now();
    for (let iter = 0; iter < 2000; iter++) {
      const name = r.pick(names);
      const mutated = { ...files, [name]: mutate(files[name]!, r) };
      const result = outcome(() => {
        const t = CLIPTokenizer.fromHuggingFaceFiles(mutated);
        // A tokenizer that loads must also work.
        const ids = t.encode('the dog <sks> 中 a photo', { maxLength: Math.min(t.modelMaxLength, 1000) });
        t.decode(ids);
        t.tokenize('the dog');
      });
      counts[result] = (counts[result] ?? 0) + 1;
      expect(result, `mutation ${iter} of ${name}: ${JSON.stringify(mutated[name]).slice(0, 200)}`).toMatch(/^(ok|TokenizerError)$/);
    }
    console.log('tokenizer fuzz outcomes', JSON.stringify(counts));
    expect(Date.now() - start).toBeLessThan(60_000);
    expect(counts.ok).toBeGreaterThan(50);
    expect(counts.TokenizerError).toBeGreaterThan(50);
  });

  it('500 seeded mutations of OpenAI merges text give a tokenizer or a TokenizerError', () => {
    const text = `#version: 0.2\n${MERGES.map((m) => m.join(' ')).join('\n')}\n`;
    const r = rng(7);
    for (let iter = 0; iter < 500; iter++) {
      const mutated = mutate(text, r);
      const result = outcome(() => CLIPTokenizer.fromMergesText(mutated));
      expect(result, `mutation ${iter}: ${JSON.stringify(mutated)}`).toMatch(/^(ok|TokenizerError)$/);
    }
  });

  it('random encode options and inputs give ids or an ArgumentError', () => {
    const t = new CLIPTokenizer({ vocab: buildVocabFromMerges(MERGES), merges: MERGES });
    const r = rng(3);
    const lengths = [0, 1, 2, 3, 77, 2 ** 24, 2 ** 24 + 1, 2 ** 31, -1, 1.5, NaN, Infinity];
    for (let iter = 0; iter < 500; iter++) {
      const maxLength = r.pick(lengths);
      const text = Array.from({ length: r.int(40) }, () => String.fromCodePoint(r.int(0x11000))).join('');
      const result = outcome(() => {
        const ids = t.encode(text, {
          maxLength,
          padding: r.rand() < 0.3 && maxLength < 1e6,
          truncation: r.rand() < 0.8,
          addSpecialTokens: r.rand() < 0.8,
        });
        t.decode(ids);
      });
      expect(result, `encode(${JSON.stringify(text)}, maxLength ${maxLength})`).toMatch(/^(ok|ArgumentError)$/);
    }
  });
});

describe('fuzz: CLIP text config', () => {
  it('2000 seeded mutations of config.json give a config (that builds) or a CLIPConfigError', () => {
    const base = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
    const fields = [
      'vocab_size',
      'hidden_size',
      'intermediate_size',
      'num_hidden_layers',
      'num_attention_heads',
      'max_position_embeddings',
      'hidden_act',
      'layer_norm_eps',
      'attention_dropout',
      'bos_token_id',
      'eos_token_id',
      'pad_token_id',
      'projection_dim',
      '__proto__',
      'constructor',
    ];
    const values: unknown[] = [
      0,
      1,
      2,
      -1,
      3,
      7,
      16,
      1.5,
      1e12,
      2 ** 31,
      2 ** 53,
      -0,
      NaN,
      Infinity,
      '768',
      null,
      [],
      {},
      true,
      'gelu',
      'relu',
      1e-5,
      2 ** 20,
      2 ** 16 + 1,
    ];
    const r = rng(42);
    const counts: Record<string, number> = {};
    for (let iter = 0; iter < 2000; iter++) {
      const config: Record<string, unknown> = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
      for (let j = 0, n = 1 + r.int(3); j < n; j++)
        Object.defineProperty(config, r.pick(fields), { value: r.pick(values), enumerable: true, configurable: true, writable: true });
      const result = outcome(() => {
        const c = parseCLIPTextConfig(config, 'config.json');
        // Shapes only: a valid config must build without a RangeError from a typed array.
        skipInit(() => new CLIPTextModel(c)).dispose();
      });
      counts[result] = (counts[result] ?? 0) + 1;
      expect(result, `config ${JSON.stringify(config)}`).toMatch(/^(ok|CLIPConfigError)$/);
    }
    console.log('config fuzz outcomes', JSON.stringify(counts));
    expect(counts.ok).toBeGreaterThan(20);
    expect(counts.CLIPConfigError).toBeGreaterThan(20);
  });

  it('a CLIPConfigError names the file and the field', () => {
    const e = (() => {
      try {
        parseCLIPTextConfig({ vocab_size: 1e12 }, 'sd15/text_encoder/config.json');
      } catch (err) {
        return err as CLIPConfigError;
      }
    })();
    expect(e).toBeInstanceOf(CLIPConfigError);
    expect(e!.message).toMatch(/^sd15\/text_encoder\/config\.json: .*vocab_size/);
  });
});
