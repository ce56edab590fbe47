// The constructor's checks of a vocabulary and merge list, before any state is built.
import type { Merge } from './bpe.js';
import { END_OF_WORD } from './bpe.js';
import { bytesToUnicode } from './bytes-to-unicode.js';
import { TokenizerError } from './errors.js';
import { END_OF_TEXT, START_OF_TEXT } from './vocab-files.js';

/** Entries of a Map or of a record's own keys (`__proto__` included when JSON.parse made it). @internal */
export function entriesOf(v: ReadonlyMap<string, number> | Readonly<Record<string, number>>): Iterable<[string, number]> {
  return v instanceof Map ? v.entries() : Object.entries(v);
}

/**
 * Token → id and id → token maps of `vocab`, after checking that ids are unique non-negative
 * integers, that the special tokens and all 512 byte symbols are there, and that every merge
 * makes a token of the vocabulary.
 * @throws {TokenizerError} naming `vocabFile` or `mergesFile`.
 * @internal
 */
export function checkVocabulary(
  vocab: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
  merges: readonly Merge[],
  vocabFile: string,
  mergesFile: string,
): { encoder: Map<string, number>; decoder: Map<number, string> } {
  const encoder = new Map<string, number>();
  const decoder = new Map<number, string>();
  for (const [token, id] of entriesOf(vocab)) {
    if (!Number.isSafeInteger(id) || id < 0)
      throw new TokenizerError(vocabFile, `id of ${JSON.stringify(token)} is ${String(id)}, expected a non-negative integer`);
    const other = decoder.get(id);
    if (other !== undefined)
      throw new TokenizerError(vocabFile, `id ${id} is used by both ${JSON.stringify(other)} and ${JSON.stringify(token)}`);
    encoder.set(token, id);
    decoder.set(id, token);
  }
  for (const special of [START_OF_TEXT, END_OF_TEXT]) {
    if (!encoder.has(special)) throw new TokenizerError(vocabFile, `missing the special token ${special}`);
  }
  for (const [byte, symbol] of bytesToUnicode()) {
    for (const s of [symbol, symbol + END_OF_WORD]) {
      if (!encoder.has(s))
        throw new TokenizerError(vocabFile, `missing the symbol ${JSON.stringify(s)} for byte 0x${byte.toString(16).padStart(2, '0')}`);
    }
  }
  merges.forEach((merge, i) => {
    if (
      !Array.isArray(merge) ||
      merge.length !== 2 ||
      typeof merge[0] !== 'string' ||
      typeof merge[1] !== 'string' ||
      !merge[0] ||
      !merge[1]
    ) {
      throw new TokenizerError(mergesFile, `merge ${i + 1} is not a pair of non-empty strings`);
    }
    const joined = merge[0] + merge[1];
    if (!encoder.has(joined)) {
      throw new TokenizerError(
        mergesFile,
        `merge ${i + 1} ("${merge[0]} ${merge[1]}") makes ${JSON.stringify(joined)}, which is not in ${vocabFile}`,
      );
    }
  });
  return { encoder, decoder };
}
