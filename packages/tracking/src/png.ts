import { encode } from 'fast-png';
import { TrackingError } from './errors.js';
import type { LoggedImage } from './records.js';

/** An image to log: 8-bit pixels in row-major HWC order (grey, RGB or RGBA). @example log.logImages(step, 'validation', [{ width: 64, height: 64, data: rgbBytes, caption: 'seed 0' }]); */
export interface ImageInput {
  readonly width: number;
  readonly height: number;
  /** `width × height × channels` bytes. */
  readonly data: Uint8Array | Uint8ClampedArray;
  /** Inferred from the data length when omitted. */
  readonly channels?: 1 | 3 | 4;
  readonly caption?: string;
}

/** Checks an image's size against its data and encodes it as PNG once, for every sink. */
export function toLoggedImage(img: ImageInput, where: string): LoggedImage {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new TrackingError(`${where}: image size ${width}×${height} must be positive integers`);
  }
  const channels = img.channels ?? data.length / (width * height);
  if (![1, 3, 4].includes(channels) || data.length !== width * height * channels) {
    throw new TrackingError(`${where}: ${data.length} bytes do not make a ${width}×${height} image with 1, 3 or 4 channels`);
  }
  const png = encode({
    width,
    height,
    channels,
    depth: 8,
    data: data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length),
  });
  return { width, height, channels, png, ...(img.caption !== undefined ? { caption: img.caption } : {}) };
}
