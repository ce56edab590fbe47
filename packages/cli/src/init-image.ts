import { readFile } from 'node:fs/promises';
import * as k from '@kiln/tensor-core';
import { decodeImage, resizeBilinear } from '@kiln/dreambooth-trainer';
import type { RgbImage } from '@kiln/dreambooth-trainer';
import { UsageError } from './usage-error.js';

/**
 * Reads the starting image of `kiln generate --image`: a PNG, JPEG or WebP file decoded by the
 * trainer's decoder (EXIF orientation applied, alpha dropped, as PIL's `convert('RGB')`). A missing
 * or unreadable file is a `UsageError` naming it; bytes that do not decode are the decoder's
 * `DatasetError` naming it.
 *
 * @example
 * ```ts
 * const image = initImageTensor(await decodeInitImage('sketch.png'), 512, 512);
 * const { rgba } = await pipe.img2img({ image, prompt: 'a castle, oil painting', strength: 0.6 });
 * ```
 */
export async function decodeInitImage(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new UsageError(`--image ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  // The trainer's Node entry (with the WebP decoder, libwebp in wasm) loads only when an image is given.
  const { decodeWebp, isWebp } = await import('@kiln/dreambooth-trainer/node');
  return isWebp(bytes) ? decodeWebp(bytes, path) : decodeImage(bytes, path);
}

/**
 * The decoded image resized to `width`×`height` with PIL's antialiased bilinear filter
 * (AUTOMATIC1111's "Just resize"), as the [1, 3, H, W] tensor in [0, 1] `pipe.img2img` takes.
 *
 * @example
 * ```ts
 * const image = initImageTensor(await decodeInitImage('photo.jpg'), 768, 512);
 * ```
 */
export function initImageTensor(img: RgbImage, width: number, height: number): k.Tensor {
  const { data, width: W, height: H } = img.width === width && img.height === height ? img : resizeBilinear(img, width, height);
  // HWC → CHW.
  const planar = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) planar[c * H * W + p] = Math.min(1, Math.max(0, data[p * 3 + c]!));
  return k.tensor(planar, { shape: [1, 3, H, W] });
}
