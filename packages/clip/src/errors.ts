import { KilnError } from '@kiln/tensor-core';

/**
 * Raised when a vocabulary, merges or tokenizer-config file (or the equivalent in-memory
 * data) cannot be used. A `KilnError` from `@kiln/tensor-core`, like every error Kiln raises
 * for bad input. `file` names the file (a path when read from disk, a label such
 * as `vocab.json` when the data came from memory) and `reason` says what is wrong, so the
 * message is useful without a stack trace.
 *
 * @example
 * ```ts
 * import { CLIPTokenizer, TokenizerError } from '@kiln/clip';
 * try {
 *   await CLIPTokenizer.fromPretrained('./models/sd15');
 * } catch (e) {
 *   if (e instanceof TokenizerError) console.error(`bad tokenizer file ${e.file}: ${e.reason}`);
 *   else throw e;
 * }
 * ```
 */
export class TokenizerError extends KilnError {
  override name = 'TokenizerError';
  /** The file (path or label) that is malformed. */
  readonly file: string;
  /** What is wrong with it, without the file name. */
  readonly reason: string;

  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super(`${file}: ${reason}`, options);
    this.file = file;
    this.reason = reason;
  }
}
