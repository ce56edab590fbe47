// CLIP's BPE over integer symbol ids, for long words. The string version in bpe.ts builds a
// "first second" key and hashes it for every adjacent pair on every pass: ~2.7 µs per byte, so
// a 10 MB run of one letter took half a minute. Here each pass scans an Int32Array of pair
// ranks and looks up only the pairs a merge created, so a pass costs a few ns per symbol.
import { bytesToUnicode } from './bytes-to-unicode.js';

const NONE = 0x7fffffff;
// Pair keys are first * 2^20 + second: exact in a double for up to 2^20 symbols.
const KEY = 2 ** 20;

/**
 * The same merges as `BytePairEncoder.merge`, on ids. Built on first use of a long word.
 * @internal
 */
export class IntegerBpe {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];
  private readonly pairRank = new Map<number, number>();
  private readonly first: Int32Array;
  private readonly second: Int32Array;
  private readonly result: Int32Array;
  // Ids of the byte stand-ins (all below U+0200) by char code, alone and with `</w>`; -1 elsewhere.
  private readonly charId = new Int32Array(0x200).fill(-1);
  private readonly charEndId = new Int32Array(0x200).fill(-1);

  // `endOfWord` is bpe.ts's END_OF_WORD, passed in so that this file does not import bpe.ts back.
  constructor(
    merges: readonly (readonly [string, string])[],
    private readonly endOfWord: string,
  ) {
    for (const [, c] of bytesToUnicode()) {
      this.charId[c.charCodeAt(0)] = this.id(c);
      this.charEndId[c.charCodeAt(0)] = this.id(c + endOfWord);
    }
    this.first = new Int32Array(merges.length);
    this.second = new Int32Array(merges.length);
    this.result = new Int32Array(merges.length);
    merges.forEach(([a, b], rank) => {
      const x = this.id(a);
      const y = this.id(b);
      this.first[rank] = x;
      this.second[rank] = y;
      this.result[rank] = this.id(a + b);
      // A repeated pair keeps its later rank, as the string version and upstream do.
      this.pairRank.set(x * KEY + y, rank);
    });
  }

  /** True when there are too many symbols for the pair keys (the caller uses strings). */
  get tooLarge(): boolean {
    return this.names.length > KEY;
  }

  private id(symbol: string): number {
    let v = this.ids.get(symbol);
    if (v === undefined) {
      v = this.names.length;
      this.ids.set(symbol, v);
      this.names.push(symbol);
    }
    return v;
  }

  // Long words that have no cut point are mostly runs of a few symbols, so the same pair
  // comes up again and again: remember the last one.
  private memoA = -1;
  private memoB = -1;
  private memoRank = NONE;

  private rank(a: number, b: number): number {
    if (a !== this.memoA || b !== this.memoB) {
      this.memoA = a;
      this.memoB = b;
      this.memoRank = this.pairRank.get(a * KEY + b) ?? NONE;
    }
    return this.memoRank;
  }

  /** BPE symbols of `token` (byte stand-ins), or undefined for a character outside the table. */
  merge(token: string, endsWord: boolean): string[] | undefined {
    let len = token.length;
    const w = new Int32Array(len);
    for (let i = 0; i < len; i++) {
      const code = token.charCodeAt(i);
      const v = code >= 0x200 ? -1 : endsWord && i === len - 1 ? this.charEndId[code]! : this.charId[code]!;
      if (v < 0) return undefined;
      w[i] = v;
    }
    // rk[i]: rank of the pair (w[i], w[i + 1]).
    const rk = new Int32Array(Math.max(len - 1, 0));
    for (let i = 0; i < len - 1; i++) rk[i] = this.rank(w[i]!, w[i + 1]!);
    for (;;) {
      let best = NONE;
      for (let i = 0; i < len - 1; i++) if (rk[i]! < best) best = rk[i]!;
      if (best === NONE) break;
      const a = this.first[best]!;
      const b = this.second[best]!;
      const m = this.result[best]!;
      // Merge every (a, b) left to right, in place (out index j never passes in index i). A
      // pair between two untouched symbols keeps its rank; pairs next to a new symbol are looked up.
      let j = 0;
      let prevSrc = -1;
      let prevNew = false;
      for (let i = 0; i < len;) {
        const src = i;
        let sym: number;
        let isNew: boolean;
        if (i < len - 1 && w[i] === a && w[i + 1] === b) {
          sym = m;
          isNew = true;
          i += 2;
        } else {
          sym = w[i]!;
          isNew = false;
          i += 1;
        }
        if (j > 0) rk[j - 1] = !isNew && !prevNew ? rk[prevSrc]! : this.rank(w[j - 1]!, sym);
        w[j++] = sym;
        prevSrc = src;
        prevNew = isNew;
      }
      len = j;
    }
    const out = new Array<string>(len);
    for (let i = 0; i < len; i++) out[i] = this.names[w[i]!]!;
    return out;
  }
}
