import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  CLIPTokenizer,
  TokenizerError,
  bytesToUnicode,
  parseMergesTxt,
  parseTokenizerConfig,
  parseVocabJson,
  serializeVocabJson,
} from '../src/index.js';
import { type Goldens, MERGES_GZ, sharedTokenizer } from './helpers.js';

const goldens = JSON.parse(readFileSync(new URL('./fixtures/tokenizer-goldens.json', import.meta.url), 'utf8')) as Goldens;

const scratch = mkdtempSync(join(tmpdir(), 'kiln-clip-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let dirCount = 0;
function newDir(): string {
  return join(scratch, `d${dirCount++}`);
}

let tok: CLIPTokenizer;
beforeAll(async () => {
  tok = await sharedTokenizer();
});

/** Expect `fn` to reject with a TokenizerError whose file ends with `file` and message matches. */
async function expectTokenizerError(fn: () => unknown, file: string, reason: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TokenizerError);
  const err = caught as TokenizerError;
  expect(err.file.endsWith(file)).toBe(true);
  expect(err.reason).toMatch(reason);
  expect(err.message).toContain(err.file);
}

describe('savePretrained / fromPretrained', () => {
  it('writes transformers-format files that load back to identical ids', async () => {
    const dir = newDir();
    await tok.savePretrained(dir);
    expect(readdirSync(dir).sort()).toEqual(['merges.txt', 'special_tokens_map.json', 'tokenizer_config.json', 'vocab.json']);
    const merges = readFileSync(join(dir, 'merges.txt'), 'utf8').split('\n');
    expect(merges[0]).toBe('#version: 0.2');
    expect(merges).toHaveLength(1 + 48894 + 1);
    const vocabText = readFileSync(join(dir, 'vocab.json'), 'utf8');
    expect(vocabText.startsWith('{\n  "!": 0,\n  "!!": ')).toBe(true);
    expect(Object.keys(JSON.parse(vocabText) as object)).toHaveLength(49408);
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ model_max_length: 77, pad_token: '<|endoftext|>', tokenizer_class: 'CLIPTokenizer' });

    const again = await CLIPTokenizer.fromPretrained(dir);
    expect(again.vocabSize).toBe(49408);
    for (const c of goldens.cases) expect(again.encode(c.prompt)).toEqual(c.input_ids);
    expect(again.getVocab()).toEqual(tok.getVocab());
  });

  it('reads a diffusers model folder (dir/tokenizer/) and keeps added tokens', async () => {
    const t = await CLIPTokenizer.fromMergesFile(MERGES_GZ);
    t.addTokens(['<sks>', '<cat-toy>']);
    const model = newDir();
    await t.savePretrained(join(model, 'tokenizer'));
    const names = readdirSync(join(model, 'tokenizer'));
    expect(names).toContain('added_tokens.json');
    expect(names.some((n) => n.endsWith('.tmp'))).toBe(false);
    const config = JSON.parse(readFileSync(join(model, 'tokenizer', 'tokenizer_config.json'), 'utf8')) as {
      added_tokens_decoder: Record<string, { content: string; special: boolean }>;
    };
    expect(config.added_tokens_decoder['49408']).toMatchObject({ content: '<sks>', special: false });
    expect(config.added_tokens_decoder['49407']).toMatchObject({ content: '<|endoftext|>', special: true });

    const again = await CLIPTokenizer.fromPretrained(model);
    expect(again.length).toBe(49410);
    expect(again.encode('a photo of <sks> dog', { padding: false })).toEqual([49406, 320, 1125, 539, 49408, 1929, 49407]);
    expect(again.addTokens(['<new>'])).toEqual([49410]);
  });

  it('takes model_max_length and pad_token from tokenizer_config.json (SD 2.x pads with "!")', async () => {
    const dir = newDir();
    await tok.savePretrained(dir);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 10, pad_token: { content: '!', lstrip: false } }));
    const t = await CLIPTokenizer.fromPretrained(dir);
    expect(t.modelMaxLength).toBe(10);
    expect(t.padTokenId).toBe(0);
    expect(t.encode('a dog')).toEqual([49406, 320, 1929, 49407, 0, 0, 0, 0, 0, 0]);
    expect(t.decode(t.encode('a dog'), { skipSpecialTokens: true })).toBe('a dog');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 1e30 }));
    expect((await CLIPTokenizer.fromPretrained(dir)).modelMaxLength).toBe(77);
    expect((await CLIPTokenizer.fromPretrained(dir, { modelMaxLength: 20 })).modelMaxLength).toBe(20);
  });

  it('browser-safe loaders give the same tokenizer as the Node ones', async () => {
    const files = tok.toHuggingFaceFiles();
    const fromFiles = CLIPTokenizer.fromHuggingFaceFiles(files);
    const { gunzipSync } = await import('node:zlib');
    const fromText = CLIPTokenizer.fromMergesText(gunzipSync(readFileSync(MERGES_GZ)).toString('utf8'));
    for (const t of [fromFiles, fromText]) {
      for (const c of goldens.cases.slice(0, 10)) expect(t.encode(c.prompt)).toEqual(c.input_ids);
    }
  });

  it('loads a plain (not gzipped) merges file', async () => {
    const { gunzipSync } = await import('node:zlib');
    const path = join(scratch, 'plain-merges.txt');
    writeFileSync(path, gunzipSync(readFileSync(MERGES_GZ)));
    const t = await CLIPTokenizer.fromMergesFile(path);
    expect(t.encode('a photo of sks dog')).toEqual(goldens.cases[0]!.input_ids);
  });

  it('writes byte-for-byte what transformers save_vocabulary writes', () => {
    const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
    const files = tok.toHuggingFaceFiles();
    expect(sha256(files['vocab.json'])).toBe(goldens.hf_vocab_json_sha256);
    expect(sha256(files['merges.txt'])).toBe(goldens.hf_merges_txt_sha256);
  });

  it('serialises vocab.json keys in Python code-point order, with integer-like keys in place', () => {
    const text = serializeVocabJson(
      new Map([
        ['b', 2],
        ['1', 1],
        ['a"\\', 0],
        ['\u{1F600}', 4],
        ['\uFF01', 3],
      ]),
    );
    expect(text).toBe('{\n  "1": 1,\n  "a\\"\\\\": 0,\n  "b": 2,\n  "\uFF01": 3,\n  "\u{1F600}": 4\n}\n');
  });
});

// A tiny but valid vocabulary: the 512 byte symbols, one merge, the special tokens.
function tinyVocab(): Map<string, number> {
  const symbols = bytesToUnicode().map(([, c]) => c);
  const tokens = [...symbols, ...symbols.map((s) => s + '</w>'), 'do', '<|startoftext|>', '<|endoftext|>'];
  return new Map(tokens.map((t, i) => [t, i]));
}

describe('malformed files raise TokenizerError naming the file', () => {
  async function pretrainedDir(files: Record<string, string | Buffer>): Promise<string> {
    const dir = newDir();
    mkdirSync(dir, { recursive: true });
    const good = tok.toHuggingFaceFiles();
    const all: Record<string, string | Buffer> = { 'vocab.json': good['vocab.json'], 'merges.txt': good['merges.txt'], ...files };
    for (const [name, text] of Object.entries(all)) writeFileSync(join(dir, name), text);
    return dir;
  }

  it('vocab.json that is not JSON', async () => {
    const dir = await pretrainedDir({ 'vocab.json': '{"a": 1,' });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(dir), join(dir, 'vocab.json'), /not valid JSON/);
  });

  it('vocab.json that is not an object', async () => {
    await expectTokenizerError(() => parseVocabJson('[1, 2]'), 'vocab.json', /JSON object/);
  });

  it('vocab.json with a non-integer id', async () => {
    const dir = await pretrainedDir({ 'vocab.json': '{"a": 1.5, "b": "x"}' });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(dir), 'vocab.json', /non-negative integers.*"a"/);
  });

  it('vocab.json without the special tokens', async () => {
    const vocab = tinyVocab();
    vocab.delete('<|startoftext|>');
    await expectTokenizerError(
      () => new CLIPTokenizer({ vocab, merges: [], sourceNames: { vocab: 'x/vocab.json' } }),
      'x/vocab.json',
      /missing the special token <\|startoftext\|>/,
    );
  });

  it('vocab.json missing a byte symbol', async () => {
    const vocab = tinyVocab();
    vocab.delete('Ġ</w>');
    await expectTokenizerError(() => new CLIPTokenizer({ vocab, merges: [] }), 'vocab', /"Ġ<\/w>" for byte 0x20/);
  });

  it('vocab.json with an id used twice', async () => {
    const vocab = tinyVocab();
    vocab.set('extra', 3);
    await expectTokenizerError(() => new CLIPTokenizer({ vocab, merges: [] }), 'vocab', /id 3 is used by both/);
  });

  it('merges.txt without the #version header', async () => {
    const dir = await pretrainedDir({ 'merges.txt': 'i n\nt h\n' });
    await expectTokenizerError(
      () => CLIPTokenizer.fromPretrained(dir),
      join(dir, 'merges.txt'),
      /line 1: expected a "#version: 0.2" header/,
    );
  });

  it('merges.txt with a line that is not a pair', async () => {
    await expectTokenizerError(() => parseMergesTxt('#version: 0.2\ni n\nt h e\n'), 'merges.txt', /line 3: expected two symbols/);
  });

  it('merges.txt whose merge is not in vocab.json', async () => {
    const dir = await pretrainedDir({ 'merges.txt': '#version: 0.2\nd o\nzzq x\n' });
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(tinyVocab())));
    await expectTokenizerError(
      () => CLIPTokenizer.fromPretrained(dir),
      join(dir, 'merges.txt'),
      /merge 2 \("zzq x"\) makes "zzqx", which is not in .*vocab\.json/,
    );
  });

  it('tokenizer_config.json with a wrong field type', async () => {
    const dir = await pretrainedDir({ 'tokenizer_config.json': '{"model_max_length": "77"}' });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(dir), join(dir, 'tokenizer_config.json'), /model_max_length/);
    await expectTokenizerError(
      () => parseTokenizerConfig('{"added_tokens_decoder": {"x": {"content": "a"}}}'),
      'tokenizer_config.json',
      /added_tokens_decoder/,
    );
  });

  it('tokenizer_config.json whose pad token is unknown', async () => {
    const dir = await pretrainedDir({ 'tokenizer_config.json': '{"pad_token": "<pad>"}' });
    await expectTokenizerError(
      () => CLIPTokenizer.fromPretrained(dir),
      join(dir, 'tokenizer_config.json'),
      /pad token "<pad>" is not in the vocabulary/,
    );
  });

  it('added_tokens.json with a bad id', async () => {
    const dir = await pretrainedDir({ 'added_tokens.json': '{"<sks>": -1}' });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(dir), join(dir, 'added_tokens.json'), /<sks>/);
    const clash = await pretrainedDir({ 'added_tokens.json': '{"<sks>": 5}' });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(clash), 'tokenizer_config.json', /<sks>.*already used/);
  });

  it('a folder without vocab.json', async () => {
    const dir = newDir();
    mkdirSync(dir, { recursive: true });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(dir), join(dir, 'vocab.json'), /not found/);
  });

  it('a file that is not UTF-8', async () => {
    const dir = await pretrainedDir({ 'merges.txt': Buffer.from([0x23, 0xff, 0xfe, 0x0a]) });
    await expectTokenizerError(() => CLIPTokenizer.fromPretrained(dir), join(dir, 'merges.txt'), /not valid UTF-8/);
  });

  it('an OpenAI merges file that is truncated or corrupt', async () => {
    const short = join(scratch, 'short.txt.gz');
    writeFileSync(short, gzipSync('"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n'));
    await expectTokenizerError(() => CLIPTokenizer.fromMergesFile(short), short, /expected 48894 merges after the header line, found 3/);

    const corrupt = join(scratch, 'corrupt.txt.gz');
    writeFileSync(corrupt, readFileSync(MERGES_GZ).subarray(0, 1000));
    await expectTokenizerError(() => CLIPTokenizer.fromMergesFile(corrupt), corrupt, /not a valid gzip file/);

    const missing = join(scratch, 'missing.txt.gz');
    await expectTokenizerError(() => CLIPTokenizer.fromMergesFile(missing), missing, /cannot be read \(ENOENT\)/);

    const badLine = join(scratch, 'bad-line.txt');
    const lines = ['#version: 0.2', ...Array<string>(48894).fill('i n')];
    lines[100] = 'one';
    writeFileSync(badLine, lines.join('\n'));
    await expectTokenizerError(() => CLIPTokenizer.fromMergesFile(badLine), badLine, /line 101: expected two symbols/);
  });

  it('constructor options that are out of range', async () => {
    await expectTokenizerError(
      () => new CLIPTokenizer({ vocab: tinyVocab(), merges: [], modelMaxLength: 1 }),
      'tokenizer options',
      /modelMaxLength/,
    );
  });
});

describe('in-memory construction', () => {
  it('works with a small vocabulary and merge list', () => {
    const t = new CLIPTokenizer({ vocab: Object.fromEntries(tinyVocab()), merges: [['d', 'o']] });
    expect(t.tokenize('do dog')).toEqual(['d', 'o</w>', 'do', 'g</w>']);
    expect(t.encode('dog', { padding: false })).toEqual([513, 512, 326, 514]);
  });
});
