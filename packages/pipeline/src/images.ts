import * as k from '@kiln/tensor-core';
import { PipelineError } from './errors.js';
import type { RgbaImage } from './txt2img-options.js';

// numpy's round(): half to even. diffusers turns [0, 1] floats into bytes with
// `(images * 255).round().astype("uint8")` in float32, so the bytes match exactly.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Images [N, 3, H, W] with values in [0, 1] as 8-bit RGBA (alpha 255), one per batch row, rounded
 * as diffusers' image processor rounds (`(x * 255).round()`, float32, half to even).
 *
 * @example
 * ```ts
 * const [first] = await toRgba(images); // { width, height, data: Uint8ClampedArray }
 * ```
 */
export async function toRgba(images: k.Tensor): Promise<RgbaImage[]> {
  if (images.ndim !== 4 || images.shape[1] !== 3)
    throw new PipelineError(`toRgba: images must be [N, 3, H, W], got [${images.shape.join(', ')}]`);
  const [N, , H, W] = images.shape;
  const f32 = images.dtype === 'float32' ? images : images.to('float32');
  const data = (await f32.data()) as Float32Array;
  if (f32 !== images) f32.dispose();
  const plane = H * W;
  return Array.from({ length: N }, (_, n) => {
    const out = new Uint8ClampedArray(plane * 4);
    const base = n * 3 * plane;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) out[i * 4 + c] = roundHalfEven(Math.fround(data[base + c * plane + i] * 255));
      out[i * 4 + 3] = 255;
    }
    return { width: W, height: H, data: out };
  });
}

/**
 * The browser's `ImageData` for an image (draw it with `ctx.putImageData(imageData, 0, 0)`);
 * needs a global `ImageData` (browsers, workers).
 *
 * @example
 * ```ts
 * const { rgba } = await pipe.txt2img({ prompt: 'a red fox', seed: 1 });
 * canvas.getContext('2d')!.putImageData(toImageData(rgba[0]), 0, 0);
 * ```
 */
export function toImageData(image: RgbaImage): ImageData {
  if (typeof ImageData === 'undefined')
    throw new PipelineError('toImageData: this runtime has no ImageData (use it in a browser, or write a PNG with writePng in Node)');
  return new ImageData(new Uint8ClampedArray(image.data), image.width, image.height);
}
