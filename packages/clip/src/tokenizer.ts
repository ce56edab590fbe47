import { ArgumentError } from '@kiln/tensor-core';
import { z } from 'zod';

import type { Merge } from './bpe.js';
import { BytePairEncoder, END_OF_WORD } from './bpe.js';
import { pushByteCharBytes, toByteChars } from './bytes-to-unicode.js';
import { cleanText, pyStrip } from './clean-text.js';
import { TokenizerError } from './errors.js';
import { preTokenize } from './pretokenize.js';
import { END_OF_TEXT, START_OF_TEXT, parseOpenAIMerges } from './vocab-files.js';
import { checkVocabulary, entriesOf } from './vocab-check.js';
import { huggingFaceFileTexts, optionsFromHuggingFaceFiles } from './hf-tokenizer-files.js';
import { loadOpenAIVocab } from './openai-vocab.js';
import { forEachPlainChunk } from './segments.js';
import { CLIP_MAX_LENGTH, MAX_ENCODE_LENGTH } from './tokenizer-options.js';
import type { CLIPTokenizerOptions, DecodeOptions, EncodeOptions, HuggingFaceTokenizerFiles, LoadOptions } from './tokenizer-options.js';

const OptionsSchema = z.object({
  modelMaxLength: z.int().min(2).max(MAX_ENCODE_LENGTH).optional(),
  padToken: z.string().min(1).optional(),
});

const utf8Decoder = new TextDecoder('utf-8');

/**
 * The CLIP BPE tokenizer, matching OpenAI's `simple_tokenizer.py` and Hugging Face's
 * `CLIPTokenizer` as Stable Diffusion 1.x uses them: text clean-up and lower-casing, CLIP's
 * pre-tokenising pattern, byte-level BPE with `</w>` word ends, start token 49406 and end
 * token 49407, padded to 77 ids.
 *
 * The constructor and {@link CLIPTokenizer.fromHuggingFaceFiles} / {@link CLIPTokenizer.fromMergesText}
 * work in browsers; {@link CLIPTokenizer.fromPretrained}, {@link CLIPTokenizer.fromMergesFile}
 * and {@link CLIPTokenizer.savePretrained} load Node's `fs` on first use.
 *
 * @example
 * ```ts
 * import { CLIPTokenizer } from '@kiln/clip';
 * const tok = await CLIPTokenizer.fromPretrained('./stable-diffusion-v1-5');
 * const ids = tok.encode('a photo of sks dog'); // 77 ids: 49406, 320, 1125, 539, …, 49407, 49407, …
 * tok.decode(ids, { skipSpecialTokens: true }); // 'a photo of sks dog'
 * ```
 */
export class CLIPTokenizer {
  /** Length `encode` pads and truncates to by default (77). */
  readonly modelMaxLength: number;
  /** Id of `<|startoftext|>` (49406). */
  readonly bosTokenId: number;
  /** Id of `<|endoftext|>` (49407). */
  readonly eosTokenId: number;
  /** Id of the padding token (49407 in SD 1.x). */
  readonly padTokenId: number;
  /** The padding token's text. */
  readonly padToken: string;

  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder: ReadonlyMap<number, string>;
  private readonly merges: readonly Merge[];
  private readonly bpe: BytePairEncoder;
  private readonly added = new Map<string, number>();
  private readonly addedById = new Map<number, string>();
  private addedPattern: RegExp | undefined;
  private nextId: number;

  /**
   * Build a tokenizer from an in-memory vocabulary and merge list (browser-safe).
   *
   * @throws {TokenizerError} when the vocabulary lacks the special tokens or byte symbols,
   *   an id is used twice, or a merge produces a token that is not in the vocabulary.
   *
   * @example
   * ```ts
   * import { CLIPTokenizer, parseVocabJson, parseMergesTxt } from '@kiln/clip';
   * const tok = new CLIPTokenizer({
   *   vocab: parseVocabJson(vocabText),
   *   merges: parseMergesTxt(mergesText),
   * });
   * ```
   */
  constructor(options: CLIPTokenizerOptions) {
    const names = options.sourceNames ?? {};
    const vocabFile = names.vocab ?? 'vocab';
    const mergesFile = names.merges ?? 'merges';
    const configFile = names.config ?? 'tokenizer options';
    const checked = OptionsSchema.safeParse({ modelMaxLength: options.modelMaxLength, padToken: options.padToken });
    if (!checked.success) {
      throw new TokenizerError(configFile, checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    }

    const { encoder, decoder } = checkVocabulary(options.vocab, options.merges, vocabFile, mergesFile);

    this.encoder = encoder;
    this.decoder = decoder;
    this.merges = options.merges.map(([a, b]) => [a, b] as const);
    this.bpe = new BytePairEncoder(this.merges, { passthrough: [START_OF_TEXT, END_OF_TEXT] });
    this.modelMaxLength = options.modelMaxLength ?? CLIP_MAX_LENGTH;
    this.bosTokenId = encoder.get(START_OF_TEXT)!;
    this.eosTokenId = encoder.get(END_OF_TEXT)!;
    this.nextId = Math.max(encoder.size, maxKey(decoder) + 1);

    for (const [token, id] of entriesOf(options.addedTokens ?? {})) {
      if (encoder.has(token)) continue;
      if (!Number.isSafeInteger(id) || id < 0 || decoder.has(id) || this.addedById.has(id)) {
        throw new TokenizerError(
          names.config ?? 'added tokens',
          `added token ${JSON.stringify(token)} has id ${String(id)}, which is invalid or already used`,
        );
      }
      this.registerAdded(token, id);
    }

    this.padToken = options.padToken ?? END_OF_TEXT;
    const padId = this.tokenToId(this.padToken);
    if (padId === undefined) throw new TokenizerError(configFile, `pad token ${JSON.stringify(this.padToken)} is not in the vocabulary`);
    this.padTokenId = padId;
  }

  /**
   * OpenAI's CLIP tokenizer, the one Stable Diffusion 1.x uses, from the vocabulary shipped in
   * this package (`data/bpe_simple_vocab_16e6.txt.gz`, MIT): no download and no model folder
   * needed. Works in Node (read from the installed package) and in browsers (fetched from the
   * URL the bundler gives the file; pass `url` to serve it from elsewhere). The file is parsed
   * once per URL; every call returns a new tokenizer, so added tokens are not shared.
   *
   * @throws {TokenizerError} when the file cannot be read, fetched, decompressed or parsed.
   *
   * @example
   * ```ts
   * import { CLIPTokenizer } from '@kiln/clip';
   * const tok = await CLIPTokenizer.fromOpenAI();
   * tok.encode('a photo of sks dog', { padding: false }); // [49406, 320, 1125, 539, 48136, 1929, 49407]
   * ```
   */
  static async fromOpenAI(options: LoadOptions & { url?: string | URL } = {}): Promise<CLIPTokenizer> {
    const { vocab, merges } = await loadOpenAIVocab(options.url);
    const file = 'bpe_simple_vocab_16e6.txt';
    return new CLIPTokenizer({
      vocab,
      merges,
      modelMaxLength: options.modelMaxLength,
      padToken: options.padToken,
      sourceNames: { vocab: file, merges: file },
    });
  }

  /**
   * Load OpenAI's merges text (`bpe_simple_vocab_16e6.txt`, decompressed), building the
   * vocabulary the way `simple_tokenizer.py` does (browser-safe).
   *
   * @throws {TokenizerError} when the text is not a CLIP merges file.
   *
   * @example
   * ```ts
   * import { CLIPTokenizer } from '@kiln/clip';
   * const text = await (await fetch('/bpe_simple_vocab_16e6.txt')).text();
   * const tok = CLIPTokenizer.fromMergesText(text);
   * ```
   */
  static fromMergesText(text: string, options: LoadOptions & { file?: string } = {}): CLIPTokenizer {
    const file = options.file ?? 'bpe_simple_vocab_16e6.txt';
    const { vocab, merges } = parseOpenAIMerges(text, file);
    return new CLIPTokenizer({
      vocab,
      merges,
      modelMaxLength: options.modelMaxLength,
      padToken: options.padToken,
      sourceNames: { vocab: file, merges: file },
    });
  }

  /**
   * Load from the text of Hugging Face's tokenizer files (browser-safe). `tokenizer_config.json`
   * supplies `model_max_length`, `pad_token` and `added_tokens_decoder`; `added_tokens.json`
   * adds tokens too.
   *
   * `options.names` gives paths or labels of the files for error messages.
   * @throws {TokenizerError} naming the file that is malformed.
   *
   * @example
   * ```ts
   * import { CLIPTokenizer } from '@kiln/clip';
   * const get = async (f: string) => (await fetch(`/sd15/tokenizer/${f}`)).text();
   * const tok = CLIPTokenizer.fromHuggingFaceFiles({
   *   'vocab.json': await get('vocab.json'),
   *   'merges.txt': await get('merges.txt'),
   *   'tokenizer_config.json': await get('tokenizer_config.json'),
   * });
   * ```
   */
  static fromHuggingFaceFiles(
    files: HuggingFaceTokenizerFiles,
    options: LoadOptions & { names?: Partial<Record<keyof HuggingFaceTokenizerFiles, string>> } = {},
  ): CLIPTokenizer {
    return new CLIPTokenizer(optionsFromHuggingFaceFiles(files, options));
  }

  /**
   * Load from a diffusers model folder (`dir/tokenizer/`) or a tokenizer folder (`dir/`)
   * holding `vocab.json` and `merges.txt`, plus `tokenizer_config.json` and
   * `added_tokens.json` when present. Node only.
   *
   * @throws {TokenizerError} when a file is missing or malformed.
   *
   * @example
   * ```ts
   * import { CLIPTokenizer } from '@kiln/clip';
   * const tok = await CLIPTokenizer.fromPretrained('./models/stable-diffusion-v1-5');
   * ```
   */
  static async fromPretrained(dir: string, options: LoadOptions = {}): Promise<CLIPTokenizer> {
    const { readPretrainedFiles } = await import('#node-only');
    const { files, names } = await readPretrainedFiles(dir);
    return CLIPTokenizer.fromHuggingFaceFiles(files, { ...options, names });
  }

  /**
   * Load OpenAI's merges file (`bpe_simple_vocab_16e6.txt.gz`, gzipped or plain). Node only.
   *
   * @throws {TokenizerError} when the file cannot be read, decompressed or parsed.
   *
   * @example
   * ```ts
   * import { CLIPTokenizer } from '@kiln/clip';
   * const tok = await CLIPTokenizer.fromMergesFile('./bpe_simple_vocab_16e6.txt.gz');
   * ```
   */
  static async fromMergesFile(path: string, options: LoadOptions = {}): Promise<CLIPTokenizer> {
    const { readMergesFile } = await import('#node-only');
    return CLIPTokenizer.fromMergesText(await readMergesFile(path), { ...options, file: path });
  }

  /**
   * Write `vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json` and
   * (when tokens were added) `added_tokens.json` into `dir` in transformers' format, each to
   * a temporary name first and then renamed, so a crash leaves no half-written file. Node only.
   *
   * @example
   * ```ts
   * await tok.savePretrained('./my-model/tokenizer');
   * const again = await CLIPTokenizer.fromPretrained('./my-model');
   * ```
   */
  async savePretrained(dir: string): Promise<void> {
    const { writeFilesAtomically } = await import('#node-only');
    await writeFilesAtomically(dir, this.toHuggingFaceFiles());
  }

  /**
   * The text of the files {@link CLIPTokenizer.savePretrained} writes (browser-safe).
   *
   * @example
   * ```ts
   * const files = tok.toHuggingFaceFiles();
   * files['merges.txt'].split('\n')[0]; // '#version: 0.2'
   * ```
   */
  toHuggingFaceFiles(): HuggingFaceTokenizerFiles {
    return huggingFaceFileTexts({
      vocab: this.encoder,
      merges: this.merges,
      added: this.added,
      bosTokenId: this.bosTokenId,
      eosTokenId: this.eosTokenId,
      padTokenId: this.padTokenId,
      padToken: this.padToken,
      modelMaxLength: this.modelMaxLength,
    });
  }

  /**
   * Size of the base vocabulary without added tokens (49 408), like transformers' `vocab_size`.
   * @example
   * ```ts
   * tok.vocabSize; // 49408
   * ```
   */
  get vocabSize(): number {
    return this.encoder.size;
  }

  /**
   * Number of tokens including added ones, like `len(tokenizer)`: the rows the embedding needs.
   * @example
   * ```ts
   * tok.addTokens(['<sks>']);
   * tok.length; // 49409
   * ```
   */
  get length(): number {
    return this.nextId;
  }

  /**
   * Id of a token (a BPE string such as `dog</w>`, a special or an added token).
   * @example
   * ```ts
   * tok.tokenToId('dog</w>'); // 1929
   * ```
   */
  tokenToId(token: string): number | undefined {
    return this.encoder.get(token) ?? this.added.get(token);
  }

  /**
   * Token string of an id, or undefined when the id is unknown.
   * @example
   * ```ts
   * tok.idToToken(1929); // 'dog</w>'
   * ```
   */
  idToToken(id: number): string | undefined {
    return this.decoder.get(id) ?? this.addedById.get(id);
  }

  /**
   * A copy of the whole vocabulary, added tokens included.
   * @example
   * ```ts
   * tok.getVocab().size; // 49408 + added tokens
   * ```
   */
  getVocab(): Map<string, number> {
    return new Map([...this.encoder, ...this.added]);
  }

  /**
   * A copy of the added tokens (token → id).
   * @example
   * ```ts
   * tok.getAddedVocab(); // Map { '<sks>' => 49408 }
   * ```
   */
  getAddedVocab(): Map<string, number> {
    return new Map(this.added);
  }

  /**
   * Add tokens that are matched verbatim in prompts before any cleaning and become a single
   * id each, like transformers' `add_tokens` (textual inversion placeholders such as `<sks>`).
   * Matching is case-sensitive; a longer added token wins over a shorter one at the same place.
   *
   * @returns The id of each token: new ids continue from {@link CLIPTokenizer.length}; a token
   *   that is already in the vocabulary or already added keeps its id.
   *
   * @example
   * ```ts
   * const [id] = tok.addTokens(['<sks>']); // 49408
   * tok.encode('a photo of <sks> dog', { padding: false }); // [49406, 320, 1125, 539, 49408, 1929, 49407]
   * ```
   */
  addTokens(tokens: readonly string[]): number[] {
    const ids = tokens.map((token) => {
      if (typeof token !== 'string' || token.length === 0)
        throw new ArgumentError(`addTokens: added tokens must be non-empty strings, got ${JSON.stringify(token)}`);
      const existing = this.tokenToId(token);
      if (existing !== undefined) return existing;
      const id = this.nextId;
      this.registerAdded(token, id);
      return id;
    });
    return ids;
  }

  /**
   * The BPE tokens of `text`, without start/end tokens: `tokenize('A photo!')` →
   * `['a</w>', 'photo</w>', '!</w>']`.
   *
   * @example
   * ```ts
   * tok.tokenize('supercalifragilistic'); // ['super', 'cali', 'frag', 'ili', 'stic</w>']
   * ```
   */
  tokenize(text: string): string[] {
    const out: string[] = [];
    this.forEachSegment(
      text,
      (added) => out.push(added),
      (word) => {
        this.bpe.forEachSymbol(word, (piece) => out.push(piece) > 0);
      },
    );
    return out;
  }

  /**
   * Token ids for `text` as Stable Diffusion feeds them to the text encoder: by default
   * `[49406, …tokens, 49407]` padded with the pad token to exactly 77 ids; when the prompt is
   * longer, the tokens are cut so that the end token is at index 76.
   *
   * @throws {ArgumentError} (from `@kiln/tensor-core`) when `maxLength` is not an integer from 2
   *   (0 without special tokens) to {@link MAX_ENCODE_LENGTH}.
   *
   * @example
   * ```ts
   * tok.encode('a photo of sks dog');                      // 77 ids
   * tok.encode('a photo of sks dog', { padding: false });  // [49406, 320, 1125, 539, 48136, 1929, 49407]
   * tok.encode(longPrompt, { maxLength: 231, padding: false }); // longer context, chunked later
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { padding = true, truncation = true, addSpecialTokens = true } = options;
    const maxLength = options.maxLength ?? this.modelMaxLength;
    const reserved = addSpecialTokens ? 2 : 0;
    if (!Number.isSafeInteger(maxLength) || maxLength < reserved || maxLength > MAX_ENCODE_LENGTH) {
      throw new ArgumentError(
        `encode: maxLength must be an integer from ${reserved} to ${MAX_ENCODE_LENGTH} (MAX_ENCODE_LENGTH), got ${String(maxLength)}`,
      );
    }
    const ids: number[] = [];
    if (addSpecialTokens) ids.push(this.bosTokenId);
    const limit = truncation ? maxLength - reserved : MAX_ENCODE_LENGTH - reserved;
    let count = 0;
    const push = (id: number): void => {
      if (count < limit) ids.push(id);
      count++;
    };
    // Once `limit` tokens exist the rest of the text cannot change them: stop reading it.
    // Without truncation, read one token past the bound to know the text is too long.
    const full = truncation ? (): boolean => count >= limit : (): boolean => count > limit;
    this.forEachSegment(
      text,
      (added) => push(this.added.get(added)!),
      (word) => {
        this.bpe.forEachSymbol(word, (piece) => {
          push(this.encoder.get(piece) ?? this.eosTokenId);
          return !full();
        });
      },
      full,
    );
    if (!truncation && count > limit) {
      throw new ArgumentError(`encode: the text has more than ${MAX_ENCODE_LENGTH} tokens (MAX_ENCODE_LENGTH); encode it with truncation`);
    }
    if (addSpecialTokens) ids.push(this.eosTokenId);
    if (padding) while (ids.length < maxLength) ids.push(this.padTokenId);
    return ids;
  }

  /**
   * Text for token ids, as OpenAI's `decode` builds it (`</w>` becomes a space, bytes are
   * decoded as UTF-8 with U+FFFD for invalid sequences), then stripped like transformers does.
   * Added tokens come out verbatim, followed by a space.
   *
   * @throws {ArgumentError} (from `@kiln/tensor-core`) for an id that is not in the vocabulary.
   *
   * @example
   * ```ts
   * tok.decode(tok.encode('A Photo, of a DOG'), { skipSpecialTokens: true }); // 'a photo , of a dog'
   * ```
   */
  decode(ids: ArrayLike<number> | Iterable<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const special = new Set([this.bosTokenId, this.eosTokenId, this.padTokenId]);
    const bytes: number[] = [];
    let text = '';
    const flush = (): void => {
      // Python decodes first and replaces '</w>' afterwards, so a '</w>' spelled across
      // tokens also becomes a space; doing the same keeps the outputs identical.
      text += utf8Decoder.decode(Uint8Array.from(bytes)).replaceAll(END_OF_WORD, ' ');
      bytes.length = 0;
    };
    for (const id of Array.from(ids as ArrayLike<number>)) {
      if (skip && special.has(id)) continue;
      const added = this.addedById.get(id);
      if (added !== undefined) {
        flush();
        text += added + ' ';
        continue;
      }
      const token = this.decoder.get(id);
      if (token === undefined || !pushByteCharBytes(token, bytes)) {
        throw new ArgumentError(`decode: token id ${String(id)} is not in the vocabulary`);
      }
    }
    flush();
    return pyStrip(text);
  }

  private registerAdded(token: string, id: number): void {
    this.added.set(token, id);
    this.addedById.set(id, token);
    this.nextId = Math.max(this.nextId, id + 1);
    const escaped = [...this.added.keys()].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.addedPattern = new RegExp(escaped.join('|'), 'gu');
  }

  // Added tokens are split out of the raw text first (as transformers does), then every
  // other stretch is cleaned, pre-tokenised and handed to BPE word by word, a bounded chunk at
  // a time, until `done()` says enough tokens exist.
  private forEachSegment(
    text: string,
    onAdded: (token: string) => void,
    onWord: (byteWord: string) => void,
    done: () => boolean = () => false,
  ): void {
    if (typeof text !== 'string') throw new ArgumentError(`expected a string to tokenize, got ${typeof text}`);
    const plain = (segment: string): void => {
      forEachPlainChunk(segment, (chunk) => {
        for (const word of preTokenize(cleanText(chunk))) {
          if (done()) return false;
          onWord(toByteChars(word));
        }
        return !done();
      });
    };
    const pattern = this.addedPattern;
    if (pattern === undefined) {
      plain(text);
      return;
    }
    let last = 0;
    for (const m of text.matchAll(pattern)) {
      plain(text.slice(last, m.index));
      if (done()) return;
      onAdded(m[0]);
      last = m.index + m[0].length;
    }
    plain(text.slice(last));
  }
}

function maxKey(m: ReadonlyMap<number, unknown>): number {
  let max = -1;
  for (const k of m.keys()) if (k > max) max = k;
  return max;
}
