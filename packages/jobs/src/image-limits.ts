import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetError } from '@kiln/dreambooth-trainer';
import { listImages } from '@kiln/dreambooth-trainer/node';

/**
 * How large a training image a worker accepts, checked from the file size and the header before decoding.
 *
 * @example
 * ```ts
 * await PoolWorker.start({ storage, backend: 'wasm', imageLimits: { maxBytes: 20 * 2 ** 20, maxPixels: 16e6 } });
 * ```
 */
export interface ImageLimits {
  /** Largest file, in bytes (default 50 MiB). */
  maxBytes: number;
  /** Most pixels, width × height (default 36 megapixels, a 6000×6000 photo; decoded to f32 RGB that is 432 MB). */
  maxPixels: number;
}

/**
 * 50 MiB and 36 megapixels: any camera photo passes, a decompression bomb does not.
 *
 * @example
 * ```ts
 * await checkImageFolder('/mnt/kiln/subjects/dog', { ...DEFAULT_IMAGE_LIMITS, maxPixels: 16e6 });
 * ```
 */
export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxBytes: 50 * 2 ** 20, maxPixels: 36e6 };

/** Bytes of a header enough for PNG, WebP and most JPEGs (whose size marker may follow EXIF data). */
const HEADER_BYTES = 256 * 1024;

/**
 * Width and height from a PNG, JPEG or WebP header, or null when the header does not say (the decoder will complain).
 *
 * @example
 * ```ts
 * imageSize(await readFile('dog.jpg')); // { width: 4032, height: 3024 }
 * ```
 */
export function imageSize(b: Uint8Array): { width: number; height: number } | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47)
    return { width: dv.getUint32(16), height: dv.getUint32(20) };
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    for (let i = 2; i + 9 < b.length;) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1];
      if (marker === 0xff) {
        i++;
        continue;
      }
      // SOF0…SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc)
        return { height: dv.getUint16(i + 5), width: dv.getUint16(i + 7) };
      i += 2 + dv.getUint16(i + 2);
    }
    return null;
  }
  const tag = (o: number) => String.fromCharCode(...b.subarray(o, o + 4));
  if (b.length >= 30 && tag(0) === 'RIFF' && tag(8) === 'WEBP') {
    const chunk = tag(12);
    if (chunk === 'VP8X') return { width: 1 + (b[24] | (b[25] << 8) | (b[26] << 16)), height: 1 + (b[27] | (b[28] << 8) | (b[29] << 16)) };
    if (chunk === 'VP8L') {
      const bits = dv.getUint32(21, true);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff) };
    }
    if (chunk === 'VP8 ') return { width: dv.getUint16(26, true) & 0x3fff, height: dv.getUint16(28, true) & 0x3fff };
  }
  return null;
}

/**
 * Refuses a training folder with an image over the limits, before the trainer decodes anything:
 * a 20000×20000 PNG is a few KB compressed and 4.8 GB decoded. A `DatasetError` (the
 * trainer's own, so the job fails at once, without retries) names the file and its size.
 *
 * @example
 * ```ts
 * await checkImageFolder('/mnt/kiln/subjects/dog', DEFAULT_IMAGE_LIMITS); // throws DatasetError for a 20000×20000 PNG
 * ```
 */
export async function checkImageFolder(dir: string, limits: ImageLimits, what = 'instance'): Promise<void> {
  if (!(await stat(dir).catch(() => null))?.isDirectory()) return; // the trainer names a missing folder itself
  for (const name of await listImages(dir)) {
    const path = join(dir, name);
    const { size } = await stat(path);
    if (size > limits.maxBytes)
      throw new DatasetError(`${what} image ${name}: ${size} bytes is over the limit of ${limits.maxBytes} bytes for a training image`);
    const f = await open(path, 'r');
    let header: Uint8Array;
    try {
      const buf = Buffer.alloc(Math.min(size, HEADER_BYTES));
      const { bytesRead } = await f.read(buf, 0, buf.length, 0);
      header = buf.subarray(0, bytesRead);
    } finally {
      await f.close();
    }
    const dims = imageSize(header);
    if (dims && dims.width * dims.height > limits.maxPixels)
      throw new DatasetError(
        `${what} image ${name}: ${dims.width}×${dims.height} (${((dims.width * dims.height) / 1e6).toFixed(1)} megapixels) is over the limit of ${(limits.maxPixels / 1e6).toFixed(1)} megapixels; downscale it first`,
      );
  }
}
