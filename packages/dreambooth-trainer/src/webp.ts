import { rgbFromRgba } from './decode-image.js';
import type { RgbImage } from './decode-image.js';
import { isNode } from './environment.js';
import { DatasetError } from './errors.js';

/**
 * Decodes a WebP file into RGB in [0, 1] with libwebp (`@jsquash/webp`) wherever this runs: in
 * Node through `decodeWebp` of `@kiln/dreambooth-trainer/node` (its wasm read from disk), in a
 * browser with the wasm its bundler serves next to the module. Bytes that do not decode are a
 * `DatasetError` naming `name`.
 *
 * @example
 * ```ts
 * const img = isWebp(bytes) ? await decodeWebpImage(bytes, 'dog/1.webp') : decodeImage(bytes, 'dog/1.png');
 * ```
 */
export async function decodeWebpImage(bytes: Uint8Array, name: string): Promise<RgbImage> {
  if (isNode()) return (await import('#node-only')).decodeWebp(bytes, name);
  let img: { width: number; height: number; data: Uint8ClampedArray };
  try {
    const { default: decode } = await import('@jsquash/webp/decode.js');
    img = await decode(bytes.slice().buffer);
  } catch (e) {
    throw new DatasetError(`${name}: the WebP image does not decode: ${(e as Error).message}`);
  }
  return rgbFromRgba(img);
}
