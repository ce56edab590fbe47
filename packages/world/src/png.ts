import { encodePng } from '@kiln/pipeline';

/**
 * PNG bytes of an RGB image (row-major, 3 bytes per pixel).
 *
 * @example
 * ```ts
 * const png = rgbToPng(renderScene(scene, 32), 32);
 * ```
 */
export function rgbToPng(rgb: Uint8Array, size: number): Uint8Array {
  const data = new Uint8ClampedArray(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    data.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
    data[i * 4 + 3] = 255;
  }
  return encodePng({ width: size, height: size, data });
}
