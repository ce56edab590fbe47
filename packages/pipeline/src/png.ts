import { encode } from 'fast-png';
import { PipelineError } from './errors.js';
import type { RgbaImage } from './txt2img-options.js';

/** Options of {@link encodePng}. */
export interface EncodePngOptions {
  /** Text chunks, keyword → text (`{ parameters: formatParameters(…) }`). */
  text?: Readonly<Record<string, string>>;
}

const LATIN1 = /^[\u0000-\u00ff]*$/;

// CRC-32 (ISO 3309, PNG's chunk checksum).
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let i = 0; i < 8; i++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// An uncompressed iTXt chunk (UTF-8 text), for text tEXt cannot hold (tEXt is Latin-1 only);
// PIL writes the same for a non-Latin-1 prompt.
function iTXtChunk(keyword: string, text: string): Uint8Array {
  const body = new Uint8Array([...new TextEncoder().encode(keyword), 0, 0, 0, 0, 0, ...new TextEncoder().encode(text)]);
  const typed = new Uint8Array([...new TextEncoder().encode('iTXt'), ...body]);
  const out = new Uint8Array(12 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  out.set(typed, 4);
  view.setUint32(8 + body.length, crc32(typed));
  return out;
}

/**
 * An RGBA image as PNG bytes (fast-png), with text chunks: `tEXt` for Latin-1 text, as SD front
 * ends write the `parameters` chunk, and `iTXt` (UTF-8) for any other text. Works in browsers too.
 *
 * @example
 * ```ts
 * const png = encodePng(rgba[0], { text: { parameters: formatParameters(info) } });
 * ```
 */
export function encodePng(image: RgbaImage, options: EncodePngOptions = {}): Uint8Array {
  const { width, height, data } = image;
  if (data.length !== width * height * 4)
    throw new PipelineError(`encodePng: ${data.length} bytes are not a ${width}×${height} RGBA image`);
  const latin: Record<string, string> = {};
  const utf8: [string, string][] = [];
  for (const [key, text] of Object.entries(options.text ?? {})) {
    if (!/^[\u0020-\u007e\u00a1-\u00ff]{1,79}$/.test(key) || key !== key.trim())
      throw new PipelineError(`encodePng: text keyword ${JSON.stringify(key)} must be 1–79 printable Latin-1 characters`);
    if (LATIN1.test(text)) latin[key] = text;
    else utf8.push([key, text]);
  }
  const png = encode({
    width,
    height,
    channels: 4,
    depth: 8,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    text: latin,
  });
  if (utf8.length === 0) return png;
  const chunks = utf8.map(([key, text]) => iTXtChunk(key, text));
  const iend = png.length - 12; // IEND is always the last 12 bytes
  const out = new Uint8Array(png.length + chunks.reduce((n, c) => n + c.length, 0));
  out.set(png.subarray(0, iend));
  let at = iend;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  out.set(png.subarray(iend), at);
  return out;
}
