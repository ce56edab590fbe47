import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { rgbFromRgba } from './decode-image.js';
import type { RgbImage } from './decode-image.js';
import { DatasetError } from './errors.js';

let ready: Promise<(bytes: ArrayBuffer) => Promise<{ width: number; height: number; data: Uint8ClampedArray }>> | undefined;

/** libwebp's decoder (Squoosh's wasm build, `@jsquash/webp`), with its wasm read from disk: Node has no fetch of file URLs. */
function decoder() {
  ready ??= (async () => {
    const mod = await import('@jsquash/webp/decode.js');
    const wasm = await readFile(createRequire(import.meta.url).resolve('@jsquash/webp/codec/dec/webp_dec.wasm'));
    await mod.init(await WebAssembly.compile(wasm));
    return mod.default as (bytes: ArrayBuffer) => Promise<{ width: number; height: number; data: Uint8ClampedArray }>;
  })();
  return ready;
}

/**
 * Decodes a WebP file (lossy or lossless, alpha dropped as PIL's convert('RGB') does) into RGB in [0, 1].
 * Bytes that do not decode are a `DatasetError` naming `name`.
 *
 * @example
 * ```ts
 * const img = await decodeWebp(await readFile('dog/1.webp'), 'dog/1.webp'); // { width, height, data }
 * ```
 */
export async function decodeWebp(bytes: Uint8Array, name: string): Promise<RgbImage> {
  let img: { width: number; height: number; data: Uint8ClampedArray };
  try {
    const decode = await decoder();
    img = await decode(bytes.slice().buffer);
  } catch (e) {
    throw new DatasetError(`${name}: the WebP image does not decode: ${(e as Error).message}`);
  }
  return rgbFromRgba(img);
}
