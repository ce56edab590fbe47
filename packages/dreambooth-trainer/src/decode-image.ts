import { convertIndexedToRgb, decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { DatasetError } from './errors.js';
import { exifOrientation, orient } from './exif.js';

/** An RGB image in [0, 1], row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Float32Array;
}

const isPng = (b: Uint8Array) => b.length > 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
const isJpeg = (b: Uint8Array) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
/**
 * Whether the bytes are a RIFF/WEBP file (which {@link decodeImage} leaves to `decodeWebpImage`).
 *
 * @example
 * ```ts
 * const img = isWebp(bytes) ? await decodeWebp(bytes, path) : decodeImage(bytes, path);
 * ```
 */
export const isWebp = (b: Uint8Array) =>
  b.length > 12 && String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' && String.fromCharCode(...b.subarray(8, 12)) === 'WEBP';

/** Unpacks 1-, 2- or 4-bit samples (PNG packs them per row, high bits first). */
function unpackBits(data: Uint8Array, width: number, height: number, channels: number, depth: number): Uint8Array {
  const perRow = width * channels;
  const stride = Math.ceil((perRow * depth) / 8);
  const out = new Uint8Array(perRow * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < perRow; x++) {
      const bit = x * depth;
      out[y * perRow + x] = (data[y * stride + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function fromPng(bytes: Uint8Array): RgbImage {
  const png = decodePng(bytes);
  const { width, height, depth } = png;
  let channels = png.channels;
  let data: ArrayLike<number> = png.data;
  let max = 2 ** depth - 1;
  if (png.palette) {
    const unpacked = depth < 8 ? unpackBits(png.data as Uint8Array, width, height, 1, depth) : png.data;
    data = convertIndexedToRgb({ ...png, data: unpacked, depth: 8 });
    channels = png.palette[0]?.length ?? 3;
    max = 255;
  } else if (depth < 8) data = unpackBits(png.data as Uint8Array, width, height, channels, depth);
  // PIL's convert('RGB'): gray is replicated, alpha is dropped (not composited).
  const out = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * channels + (channels >= 3 ? c : 0)] / max;
  }
  return { width, height, data: out };
}

/** 8-bit RGBA (a decoder's output) as RGB in [0, 1]; alpha is dropped, as PIL's convert('RGB') does. */
export function rgbFromRgba(img: { width: number; height: number; data: ArrayLike<number> }): RgbImage {
  const n = img.width * img.height;
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = img.data[i * 4 + c] / 255;
  return { width: img.width, height: img.height, data: out };
}

function fromJpeg(bytes: Uint8Array): RgbImage {
  return rgbFromRgba(jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 2048 }));
}

/**
 * Decodes a PNG (any bit depth and colour type: gray, palette, 16-bit, alpha) or a JPEG into RGB
 * in [0, 1], as PIL's `convert('RGB')` after `exif_transpose` does: EXIF orientation is applied.
 * Bad bytes are a {@link DatasetError} naming `name`.
 *
 * @example
 * ```ts
 * const img = decodeImage(await readFile('dog/1.jpg'), 'dog/1.jpg'); // { width, height, data }
 * ```
 */
export function decodeImage(bytes: Uint8Array, name: string): RgbImage {
  let img: RgbImage;
  try {
    if (isPng(bytes)) img = fromPng(bytes);
    else if (isJpeg(bytes)) img = fromJpeg(bytes);
    else if (isWebp(bytes))
      throw new DatasetError(
        `${name}: WebP decodes asynchronously (decodeWebpImage and loadImageFolder read it); decodeImage takes PNG and JPEG`,
      );
    else throw new DatasetError(`${name}: not a PNG, JPEG or WebP image (unrecognised file signature)`);
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    throw new DatasetError(`${name}: the image does not decode: ${(e as Error).message}`);
  }
  if (!(img.width > 0 && img.height > 0)) throw new DatasetError(`${name}: the image has no pixels (${img.width}×${img.height})`);
  return orient(img, exifOrientation(bytes));
}
