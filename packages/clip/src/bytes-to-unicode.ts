/**
 * GPT-2/CLIP's reversible byte → character table. BPE works on strings, and every byte
 * value needs a printable, non-whitespace stand-in so that merges never see spaces or
 * control characters. Printable Latin-1 bytes map to themselves; the other 68 bytes are
 * shifted to U+0100.. in byte order. Identical to `bytes_to_unicode()` in OpenAI's
 * simple_tokenizer.py, including the order of the result (the order defines the first
 * 256 vocabulary ids when the vocabulary is rebuilt from a merges file).
 *
 * @returns 256 `[byte, char]` pairs in upstream's order.
 *
 * @example
 * ```ts
 * import { bytesToUnicode } from '@kiln/clip';
 * const table = new Map(bytesToUnicode());
 * table.get(0x20); // 'Ġ' — space
 * ```
 */
export function bytesToUnicode(): Array<[number, string]> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  const present = new Set(bs);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!present.has(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return bs.map((b, i) => [b, String.fromCharCode(cs[i]!)]);
}

// Indexed by byte value; built once because encode() consults it for every non-ASCII byte.
const BYTE_TO_CHAR: string[] = (() => {
  const table = new Array<string>(256);
  for (const [b, c] of bytesToUnicode()) table[b] = c;
  return table;
})();

const BYTE_TO_CODE = Uint16Array.from(BYTE_TO_CHAR, (c) => c.charCodeAt(0));

const CHAR_TO_BYTE: Map<string, number> = new Map(bytesToUnicode().map(([b, c]) => [c, b]));

const utf8 = new TextEncoder();
const utf16 = new TextDecoder('utf-16le');

/**
 * UTF-8 encode `text` and replace each byte by its stand-in character.
 * @internal
 */
export function toByteChars(text: string): string {
  // Printable ASCII maps to itself, and nearly every prompt word is printable ASCII.
  if (/^[!-~]*$/.test(text)) return text;
  const bytes = utf8.encode(text);
  if (bytes.length <= 64) {
    let out = '';
    for (const b of bytes) out += BYTE_TO_CHAR[b];
    return out;
  }
  // Long words: all char codes at once (one `+=` per byte took 21 s for 15 MB).
  const codes = new Uint16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) codes[i] = BYTE_TO_CODE[bytes[i]!]!;
  return utf16.decode(codes);
}

/**
 * Inverse of {@link toByteChars} for one BPE piece, appending raw bytes to `out`.
 * Returns false when the piece contains a character outside the byte table.
 * @internal
 */
export function pushByteCharBytes(piece: string, out: number[]): boolean {
  for (let i = 0; i < piece.length; i++) {
    const b = CHAR_TO_BYTE.get(piece[i]!);
    if (b === undefined) return false;
    out.push(b);
  }
  return true;
}
