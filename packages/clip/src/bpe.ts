import { IntegerBpe } from './bpe-long.js';

/**
 * One BPE merge rule: the two symbols that are joined. Its rank is its position in the list.
 *
 * @example
 * ```ts
 * import type { Merge } from '@kiln/clip';
 * const merges: Merge[] = [['t', 'h'], ['th', 'e</w>']]; // "the" → one symbol
 * ```
 */
export type Merge = readonly [string, string];

/**
 * Suffix CLIP appends to the last symbol of every word.
 *
 * @example
 * ```ts
 * import { END_OF_WORD } from '@kiln/clip';
 * tok.tokenize('dog')[0]?.endsWith(END_OF_WORD); // true
 * ```
 */
export const END_OF_WORD = '</w>';

/**
 * Options for {@link BytePairEncoder}.
 *
 * @example
 * ```ts
 * import { BytePairEncoder } from '@kiln/clip';
 * const bpe = new BytePairEncoder(merges, { passthrough: ['<|endoftext|>'], cacheSize: 10_000 });
 * ```
 */
export interface BytePairEncoderOptions {
  /** Words returned as they are, without `</w>` (CLIP's special tokens). */
  readonly passthrough?: Iterable<string>;
  /**
   * Most words kept in the cache before it is emptied. Prompts reuse a small vocabulary, so
   * the cache is what makes encoding cheap, but a long-running server should not grow forever.
   * Default 65 536.
   */
  readonly cacheSize?: number;
}

const MAX_CACHED_WORD = 256;
// Words longer than this are cut at unjoinable character pairs before merging.
const LONG_WORD = 64;
// Pieces longer than this are merged on integer ids (bpe-long.ts), which is faster per pass
// but costs building its symbol table once.
const FAST_MERGE = 128;
// Byte stand-ins are below U+0144 (bytesToUnicode), so a 512×512 table covers every pair.
const CODE_LIMIT = 512;

/**
 * CLIP's byte-level BPE on one pre-tokenised word, as `SimpleTokenizer.bpe` does it: the word
 * is split into symbols, `</w>` is glued to the last one, and the adjacent pair with the
 * lowest merge rank is joined everywhere (left to right, non-overlapping) until no ranked
 * pair is left. Results are cached per word.
 *
 * @example
 * ```ts
 * import { BytePairEncoder } from '@kiln/clip';
 * const bpe = new BytePairEncoder([['d', 'o'], ['do', 'g</w>']]);
 * bpe.encodeWord('dog'); // ['dog</w>']
 * ```
 */
export class BytePairEncoder {
  // Keyed by "first second": symbols never contain a space (the byte table maps 0x20 to 'Ġ').
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, readonly string[]>();
  private readonly innerCache = new Map<string, readonly string[]>();
  private readonly passthrough: ReadonlySet<string>;
  private readonly cacheSize: number;
  private readonly mergeResults: string[] = [];
  private readonly mergeList: Merge[] = [];
  private joinable: Uint8Array | undefined;
  private integer: IntegerBpe | undefined;

  constructor(merges: Iterable<Merge>, options: BytePairEncoderOptions = {}) {
    let rank = 0;
    // A repeated pair keeps its later rank, as `dict(zip(merges, range(...)))` does upstream.
    for (const [a, b] of merges) {
      this.ranks.set(`${a} ${b}`, rank++);
      this.mergeResults.push(a + b);
      this.mergeList.push([a, b]);
    }
    this.passthrough = new Set(options.passthrough ?? []);
    this.cacheSize = options.cacheSize ?? 65_536;
  }

  /** Rank of the merge `first second`, or undefined when there is none. */
  rank(first: string, second: string): number | undefined {
    return this.ranks.get(`${first} ${second}`);
  }

  /**
   * BPE symbols for one word whose characters are byte stand-ins (see `bytesToUnicode`).
   * The returned array is shared with the cache: do not modify it.
   */
  encodeWord(word: string): readonly string[] {
    return this.encodePiece(word, true);
  }

  /**
   * Hand the BPE symbols of `word` to `sink` in order until it returns false; returns false
   * when it stopped early. Equal to iterating {@link BytePairEncoder.encodeWord}, but a long
   * word is cut where no merge can ever join across (no token holds the two characters side
   * by side), and its pieces are merged one at a time: a 15-million-byte word costs what its
   * pieces cost, and a caller that has enough symbols stops reading it.
   */
  forEachSymbol(word: string, sink: (symbol: string) => boolean): boolean {
    if (word.length <= LONG_WORD || this.passthrough.has(word)) {
      for (const symbol of this.encodePiece(word, true)) if (!sink(symbol)) return false;
      return true;
    }
    const joinable = this.joinablePairs();
    let start = 0;
    for (let i = 1; i <= word.length; i++) {
      if (i < word.length && joinable(word.charCodeAt(i - 1), word.charCodeAt(i))) continue;
      for (const symbol of this.encodePiece(word.slice(start, i), i === word.length)) if (!sink(symbol)) return false;
      start = i;
    }
    return true;
  }

  // A piece that does not end its word gets no `</w>` and its own cache.
  private encodePiece(piece: string, endsWord: boolean): readonly string[] {
    const cache = endsWord ? this.cache : this.innerCache;
    const cached = cache.get(piece);
    if (cached !== undefined) return cached;
    const result = endsWord && this.passthrough.has(piece) ? [piece] : this.merge(piece, endsWord);
    // Prompt words repeat; a freak 10k-character word does not, and would pin its pieces.
    if (piece.length > MAX_CACHED_WORD) return result;
    if (cache.size >= this.cacheSize) cache.clear();
    cache.set(piece, result);
    return result;
  }

  // Whether two adjacent characters can end up in one symbol: true when some merge's result
  // holds them side by side (or a character is outside the byte table, to be safe).
  private joinablePairs(): (a: number, b: number) => boolean {
    if (this.joinable === undefined) {
      const table = new Uint8Array(CODE_LIMIT * CODE_LIMIT);
      for (const token of this.mergeResults) {
        for (let i = 1; i < token.length; i++) {
          const a = token.charCodeAt(i - 1);
          const b = token.charCodeAt(i);
          if (a < CODE_LIMIT && b < CODE_LIMIT) table[a * CODE_LIMIT + b] = 1;
        }
      }
      this.joinable = table;
    }
    const table = this.joinable;
    return (a, b) => a >= CODE_LIMIT || b >= CODE_LIMIT || table[a * CODE_LIMIT + b] === 1;
  }

  /** Forget cached words (for benchmarks that want cold-cache numbers). */
  clearCache(): void {
    this.cache.clear();
    this.innerCache.clear();
  }

  private merge(token: string, endsWord: boolean): string[] {
    if (token.length === 0) return [];
    if (token.length > FAST_MERGE) {
      this.integer ??= new IntegerBpe(this.mergeList, END_OF_WORD);
      const symbols = this.integer.tooLarge ? undefined : this.integer.merge(token, endsWord);
      if (symbols !== undefined) return symbols;
    }
    // Byte stand-ins are all in the BMP, so UTF-16 units are the symbols.
    let word = token.split('');
    if (endsWord) word[word.length - 1] += END_OF_WORD;
    while (word.length > 1) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          first = word[i]!;
          second = word[i + 1]!;
        }
      }
      if (best === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    return word;
  }
}
