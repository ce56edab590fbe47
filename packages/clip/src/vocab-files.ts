import { z } from 'zod';

import type { Merge } from './bpe.js';
import { END_OF_WORD } from './bpe.js';
import { bytesToUnicode } from './bytes-to-unicode.js';
import { TokenizerError } from './errors.js';
import { MAX_ENCODE_LENGTH } from './tokenizer-options.js';

/**
 * CLIP's start-of-text token (id 49406 in the released vocabulary).
 *
 * @example
 * ```ts
 * import { START_OF_TEXT } from '@kiln/clip';
 * tok.tokenToId(START_OF_TEXT); // 49406
 * ```
 */
export const START_OF_TEXT = '<|startoftext|>';
/**
 * CLIP's end-of-text token (id 49407), also its padding and unknown token in SD 1.x.
 *
 * @example
 * ```ts
 * import { END_OF_TEXT } from '@kiln/clip';
 * tok.tokenToId(END_OF_TEXT); // 49407
 * ```
 */
export const END_OF_TEXT = '<|endoftext|>';
/**
 * Merges used from OpenAI's merges file: `lines[1 : 49152 - 256 - 2 + 1]` (48 894).
 *
 * @example
 * ```ts
 * import { CLIP_MERGE_COUNT } from '@kiln/clip';
 * const vocabSize = 2 * 256 + CLIP_MERGE_COUNT + 2; // 49408
 * ```
 */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

/**
 * A vocabulary and merge list, as the tokenizer's constructor takes them.
 *
 * @example
 * ```ts
 * import { CLIPTokenizer, parseOpenAIMerges, type VocabAndMerges } from '@kiln/clip';
 * const parts: VocabAndMerges = parseOpenAIMerges(text);
 * const tok = new CLIPTokenizer(parts);
 * ```
 */
export interface VocabAndMerges {
  readonly vocab: ReadonlyMap<string, number>;
  readonly merges: readonly Merge[];
}

function describeZodError(error: z.ZodError): string {
  const shown = error.issues.slice(0, 3).map((issue) => {
    const at = issue.path.length > 0 ? `at ${issue.path.map((p) => JSON.stringify(String(p))).join('.')}: ` : '';
    return at + issue.message;
  });
  const more = error.issues.length > 3 ? ` (and ${error.issues.length - 3} more problems)` : '';
  return shown.join('; ') + more;
}

function parseJson(text: string, file: string, reviver?: (key: string, value: unknown) => unknown): unknown {
  try {
    return JSON.parse(text, reviver) as unknown;
  } catch (e) {
    throw new TokenizerError(file, `is not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

// A settings file is read through zod objects, which copy keys by assignment: a "__proto__"
// key would become the prototype of the result, and its fields would read as settings. No
// setting is named so, so such a file is refused (token files keep the key: parseIdRecord).
function parseSettingsJson(text: string, file: string): unknown {
  let found = false;
  const json = parseJson(text, file, (key, value) => {
    if (key === '__proto__') found = true;
    return value;
  });
  if (found) throw new TokenizerError(file, 'has a "__proto__" key, which is not a tokenizer setting');
  return json;
}

// Token → id objects are read by hand, not with z.record: zod builds its output with plain
// assignments, and `out['__proto__'] = 5` sets a prototype instead of keeping the token.
// JSON.parse makes every key an own property, so Object.entries sees `__proto__` too.
function parseIdRecord(json: unknown, file: string, what: string, allowEmptyToken: boolean): Map<string, number> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TokenizerError(file, `expected a JSON object mapping ${what}s to ids`);
  }
  const out = new Map<string, number>();
  const bad: string[] = [];
  for (const [token, id] of Object.entries(json)) {
    if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 && (allowEmptyToken || token !== '')) out.set(token, id);
    else
      bad.push(
        `at ${JSON.stringify(token)}: ${token === '' && !allowEmptyToken ? `empty ${what}` : `id ${JSON.stringify(id) ?? String(id)}`}`,
      );
  }
  if (bad.length > 0) {
    const more = bad.length > 3 ? ` (and ${bad.length - 3} more problems)` : '';
    throw new TokenizerError(file, `expected ${what} ids to be non-negative integers: ${bad.slice(0, 3).join('; ')}${more}`);
  }
  return out;
}

/**
 * Parse Hugging Face's `vocab.json` (an object from token to id). Every token is kept,
 * including ones named like `Object.prototype` members (`__proto__`, `constructor`).
 *
 * @param file Name used in errors (a path, or a label for in-memory data).
 * @throws {TokenizerError} when the text is not JSON or not an object of non-negative integer ids.
 *
 * @example
 * ```ts
 * import { parseVocabJson } from '@kiln/clip';
 * const vocab = parseVocabJson('{"a": 0, "a</w>": 1}'); // Map { 'a' => 0, 'a</w>' => 1 }
 * ```
 */
export function parseVocabJson(text: string, file = 'vocab.json'): Map<string, number> {
  return parseIdRecord(parseJson(text, file), file, 'token', true);
}

const PY_WS = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
// The common case, "a b" with exactly one space, in one regex call.
const PAIR_RE = new RegExp(`^([^${PY_WS}]+) ([^${PY_WS}]+)$`, 'u');

// Python's str.split() with no argument: runs of whitespace, no empty parts.
function pySplit(line: string): string[] {
  const m = PAIR_RE.exec(line);
  if (m !== null) return [m[1]!, m[2]!];
  return line.split(/[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u).filter((s) => s !== '');
}

// A plain line loop, not a zod schema: merges are a line format, not JSON, and this runs
// for ~49k lines on every load (a per-line safeParse tripled the load time).
function parseMergeLines(lines: readonly string[], firstLineNumber: number, file: string): Merge[] {
  const merges: Merge[] = new Array<Merge>(lines.length);
  for (let i = 0; i < lines.length; i++) {
    const parts = pySplit(lines[i]!);
    if (parts.length !== 2) {
      throw new TokenizerError(
        file,
        `line ${firstLineNumber + i}: expected two symbols separated by a space, got ${JSON.stringify(lines[i])}`,
      );
    }
    merges[i] = [parts[0]!, parts[1]!];
  }
  return merges;
}

/**
 * Parse Hugging Face's `merges.txt`: a `#version: …` header line, then one merge per line.
 * Like `CLIPTokenizer` in transformers, at most {@link CLIP_MERGE_COUNT} merges are used.
 *
 * @throws {TokenizerError} when the header is missing or a line is not a pair of symbols.
 *
 * @example
 * ```ts
 * import { parseMergesTxt } from '@kiln/clip';
 * parseMergesTxt('#version: 0.2\nd o\ndo g</w>\n'); // [['d', 'o'], ['do', 'g</w>']]
 * ```
 */
export function parseMergesTxt(text: string, file = 'merges.txt'): Merge[] {
  // transformers: merges_handle.read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]
  const lines = text.trim().split('\n');
  if (!lines[0]!.startsWith('#')) {
    throw new TokenizerError(file, `line 1: expected a "#version: 0.2" header, got ${JSON.stringify(lines[0]!.slice(0, 80))}`);
  }
  return parseMergeLines(lines.slice(1, 1 + CLIP_MERGE_COUNT), 2, file);
}

/**
 * Parse OpenAI's merges file (`bpe_simple_vocab_16e6.txt`, already decompressed) and build
 * the vocabulary from it exactly as `simple_tokenizer.py` does: the 256 byte symbols, the
 * same with `</w>`, the join of each of the first {@link CLIP_MERGE_COUNT} merges, then
 * `<|startoftext|>` and `<|endoftext|>` — 49 408 ids.
 *
 * @throws {TokenizerError} when the file has fewer merges than CLIP uses or a malformed line.
 *
 * @example
 * ```ts
 * import { parseOpenAIMerges } from '@kiln/clip';
 * const { vocab, merges } = parseOpenAIMerges(text);
 * vocab.get('<|endoftext|>'); // 49407
 * ```
 */
export function parseOpenAIMerges(text: string, file = 'bpe_simple_vocab_16e6.txt'): VocabAndMerges {
  // Only the first 48 895 of the file's ~262k lines are used; don't split the rest.
  const lines: string[] = [];
  let start = text.indexOf('\n') + 1;
  while (start > 0 && lines.length < CLIP_MERGE_COUNT) {
    const end = text.indexOf('\n', start);
    lines.push(text.slice(start, end === -1 ? undefined : end));
    start = end + 1;
  }
  if (lines.length < CLIP_MERGE_COUNT) {
    throw new TokenizerError(file, `expected ${CLIP_MERGE_COUNT} merges after the header line, found ${lines.length}`);
  }
  const merges = parseMergeLines(lines, 2, file);
  return { vocab: buildVocabFromMerges(merges), merges };
}

/**
 * The vocabulary OpenAI's tokenizer derives from a merge list (see {@link parseOpenAIMerges}).
 *
 * @example
 * ```ts
 * import { buildVocabFromMerges } from '@kiln/clip';
 * buildVocabFromMerges([['d', 'o']]).get('do'); // 512
 * ```
 */
export function buildVocabFromMerges(merges: readonly Merge[]): Map<string, number> {
  const symbols = bytesToUnicode().map(([, c]) => c);
  const tokens = [...symbols, ...symbols.map((s) => s + END_OF_WORD), ...merges.map(([a, b]) => a + b), START_OF_TEXT, END_OF_TEXT];
  // A later duplicate overwrites the id, as dict(zip(vocab, range(len(vocab)))) does.
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i));
  return vocab;
}

// Python sorts str keys by code point; JS's default sort compares UTF-16 units, which
// disagrees only where a surrogate meets a unit >= U+E000. Shifting units so surrogates rank
// above the rest of the BMP restores code-point order without iterating code points.
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    x += x >= 0xe000 ? -0x800 : x >= 0xd800 ? 0x2000 : 0;
    y += y >= 0xe000 ? -0x800 : y >= 0xd800 ? 0x2000 : 0;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * `vocab.json` text as transformers' `save_vocabulary` writes it
 * (`json.dumps(encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"`).
 * Built by hand because JS objects put integer-like keys ("0".."9") first.
 *
 * @example
 * ```ts
 * import { serializeVocabJson } from '@kiln/clip';
 * serializeVocabJson(new Map([['b', 1], ['a', 0]])); // '{\n  "a": 0,\n  "b": 1\n}\n'
 * ```
 */
export function serializeVocabJson(vocab: ReadonlyMap<string, number>): string {
  const keys = [...vocab.keys()].sort(compareCodePoints);
  if (keys.length === 0) return '{}\n';
  return `{\n${keys.map((k) => `  ${JSON.stringify(k)}: ${vocab.get(k)}`).join(',\n')}\n}\n`;
}

/**
 * `merges.txt` text as transformers writes it: `#version: 0.2`, then one merge per line.
 *
 * @example
 * ```ts
 * import { serializeMergesTxt } from '@kiln/clip';
 * serializeMergesTxt([['d', 'o']]); // '#version: 0.2\nd o\n'
 * ```
 */
export function serializeMergesTxt(merges: readonly Merge[]): string {
  return `#version: 0.2\n${merges.map(([a, b]) => `${a} ${b}\n`).join('')}`;
}

const SpecialTokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })]);
const AddedTokenSchema = z.looseObject({ content: z.string().min(1), special: z.boolean().optional() });

const TokenizerConfigSchema = z.looseObject({
  model_max_length: z.number().positive().optional(),
  pad_token: SpecialTokenSchema.nullable().optional(),
  added_tokens_decoder: z.record(z.string().regex(/^\d+$/, 'expected an integer id as key'), AddedTokenSchema).optional(),
});

/**
 * The fields of `tokenizer_config.json` that the tokenizer uses.
 *
 * @example
 * ```ts
 * import { parseTokenizerConfig, type TokenizerConfig } from '@kiln/clip';
 * const config: TokenizerConfig = parseTokenizerConfig('{"pad_token": "!"}');
 * config.padToken; // '!'
 * ```
 */
export interface TokenizerConfig {
  /**
   * Sequence length; undefined when absent or a "no limit" placeholder (transformers' 1e30,
   * or anything above {@link MAX_ENCODE_LENGTH}, such as 9007199254740991).
   */
  readonly modelMaxLength?: number;
  /** Padding token content (`<|endoftext|>` in SD 1.x, `!` in SD 2.x). */
  readonly padToken?: string;
  /** Tokens by id from `added_tokens_decoder` (includes the special tokens). */
  readonly addedTokens: ReadonlyMap<number, { readonly content: string; readonly special: boolean }>;
}

/**
 * Parse the parts of Hugging Face's `tokenizer_config.json` that matter here.
 *
 * @throws {TokenizerError} when a used field has the wrong type.
 *
 * @example
 * ```ts
 * import { parseTokenizerConfig } from '@kiln/clip';
 * parseTokenizerConfig('{"model_max_length": 77}').modelMaxLength; // 77
 * ```
 */
export function parseTokenizerConfig(text: string, file = 'tokenizer_config.json'): TokenizerConfig {
  const parsed = TokenizerConfigSchema.safeParse(parseSettingsJson(text, file));
  if (!parsed.success) throw new TokenizerError(file, describeZodError(parsed.error));
  const { model_max_length: maxLen, pad_token: pad, added_tokens_decoder: decoder } = parsed.data;
  const addedTokens = new Map<number, { content: string; special: boolean }>();
  for (const [id, t] of Object.entries(decoder ?? {})) addedTokens.set(Number(id), { content: t.content, special: t.special ?? false });
  return {
    // transformers writes int(1e30) for "no limit", other tools Number.MAX_SAFE_INTEGER; any
    // length encode could not pad to reads as "no limit" (CLIP's 77 positions then apply).
    modelMaxLength: maxLen !== undefined && Number.isSafeInteger(maxLen) && maxLen <= MAX_ENCODE_LENGTH ? maxLen : undefined,
    padToken: pad == null ? undefined : typeof pad === 'string' ? pad : pad.content,
    addedTokens,
  };
}

/**
 * Parse transformers' `added_tokens.json` (token → id).
 *
 * @throws {TokenizerError} when it is not an object of non-negative integer ids.
 *
 * @example
 * ```ts
 * import { parseAddedTokensJson } from '@kiln/clip';
 * parseAddedTokensJson('{"<sks>": 49408}'); // Map { '<sks>' => 49408 }
 * ```
 */
export function parseAddedTokensJson(text: string, file = 'added_tokens.json'): Map<string, number> {
  return parseIdRecord(parseJson(text, file), file, 'added token', false);
}
