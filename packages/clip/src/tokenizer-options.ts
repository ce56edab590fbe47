// The tokenizer's option and file types, and its length limits.
import type { Merge } from './bpe.js';

/**
 * Sequence length of CLIP's text encoder in Stable Diffusion 1.x and 2.x.
 *
 * @example
 * ```ts
 * import { CLIP_MAX_LENGTH } from '@kiln/clip';
 * tok.encode('a dog').length === CLIP_MAX_LENGTH; // true
 * ```
 */
export const CLIP_MAX_LENGTH = 77;

/**
 * Names used in error messages for where each input came from.
 *
 * @example
 * ```ts
 * new CLIPTokenizer({ vocab, merges, sourceNames: { vocab: 'cdn/vocab.json', merges: 'cdn/merges.txt' } });
 * ```
 */
export interface TokenizerSourceNames {
  readonly vocab?: string;
  readonly merges?: string;
  readonly config?: string;
}

/**
 * Options of the {@link CLIPTokenizer} constructor.
 *
 * @example
 * ```ts
 * import { CLIPTokenizer, type CLIPTokenizerOptions } from '@kiln/clip';
 * const options: CLIPTokenizerOptions = { vocab, merges, padToken: '!', addedTokens: { '<sks>': 49408 } };
 * const tok = new CLIPTokenizer(options);
 * ```
 */
export interface CLIPTokenizerOptions {
  /** Token → id, as in `vocab.json`. Must contain `<|startoftext|>`, `<|endoftext|>` and the 512 byte symbols. */
  readonly vocab: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  /** Merge rules in rank order, as in `merges.txt`. */
  readonly merges: readonly Merge[];
  /** Length `encode` pads and truncates to. Default 77. */
  readonly modelMaxLength?: number;
  /** Padding token. Default `<|endoftext|>` (SD 1.x); SD 2.x's tokenizer uses `!`. */
  readonly padToken?: string;
  /** Tokens added on top of the vocabulary (textual inversion), with their ids. */
  readonly addedTokens?: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  /** File names for error messages. */
  readonly sourceNames?: TokenizerSourceNames;
}

/**
 * Options of {@link CLIPTokenizer.encode}.
 *
 * @example
 * ```ts
 * tok.encode(prompt, { padding: false, maxLength: 77, truncation: true, addSpecialTokens: true });
 * ```
 */
export interface EncodeOptions {
  /** Pad with the pad token up to `maxLength`. Default true (as Stable Diffusion calls it). */
  readonly padding?: boolean;
  /** Length including the start and end tokens. Default `modelMaxLength` (77). */
  readonly maxLength?: number;
  /** Cut the tokens so start + tokens + end fit `maxLength`; the end token is kept. Default true. */
  readonly truncation?: boolean;
  /** Add `<|startoftext|>` and `<|endoftext|>`. Default true. */
  readonly addSpecialTokens?: boolean;
}

/**
 * Options of {@link CLIPTokenizer.decode}.
 *
 * @example
 * ```ts
 * tok.decode(ids, { skipSpecialTokens: true }); // 'a photo of sks dog'
 * ```
 */
export interface DecodeOptions {
  /** Leave out start, end and pad tokens. Default false. */
  readonly skipSpecialTokens?: boolean;
}

/**
 * Options of the loaders ({@link CLIPTokenizer.fromPretrained} and friends).
 *
 * @example
 * ```ts
 * const tok = await CLIPTokenizer.fromPretrained(dir, { modelMaxLength: 77, padToken: '<|endoftext|>' });
 * ```
 */
export interface LoadOptions {
  /** Overrides `model_max_length`. */
  readonly modelMaxLength?: number;
  /** Overrides the padding token. */
  readonly padToken?: string;
}

/**
 * File contents in Hugging Face's tokenizer layout, by file name.
 *
 * @example
 * ```ts
 * import type { HuggingFaceTokenizerFiles } from '@kiln/clip';
 * const files: HuggingFaceTokenizerFiles = tok.toHuggingFaceFiles();
 * const copy = CLIPTokenizer.fromHuggingFaceFiles(files);
 * ```
 */
export interface HuggingFaceTokenizerFiles {
  readonly 'vocab.json': string;
  readonly 'merges.txt': string;
  readonly 'tokenizer_config.json'?: string;
  readonly 'special_tokens_map.json'?: string;
  readonly 'added_tokens.json'?: string;
}

/**
 * Longest sequence `encode` returns, and the largest `maxLength` / `modelMaxLength` it accepts
 * (2^24 ids, 64 MiB as int32). Far above any text encoder's context; it exists so that a
 * config's "no limit" placeholder such as `9007199254740991` cannot make `encode` try to pad
 * to 2^53 ids, which aborts the JavaScript engine instead of throwing.
 *
 * @example
 * ```ts
 * import { MAX_ENCODE_LENGTH } from '@kiln/clip';
 * tok.encode(text, { maxLength: MAX_ENCODE_LENGTH, padding: false }); // effectively no truncation
 * ```
 */
export const MAX_ENCODE_LENGTH = 2 ** 24;
