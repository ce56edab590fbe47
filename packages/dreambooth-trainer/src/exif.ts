import type { RgbImage } from './decode-image.js';

/** Reads the EXIF Orientation tag (1–8) of a TIFF-structured EXIF block, or 1. */
function orientationFromTiff(b: Uint8Array, start: number, end: number): number {
  if (start + 8 > end) return 1;
  const little = b[start] === 0x49 && b[start + 1] === 0x49;
  if (!little && !(b[start] === 0x4d && b[start + 1] === 0x4d)) return 1;
  const u16 = (o: number) => (little ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1]);
  const u32 = (o: number) =>
    little
      ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24
      : b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  const ifd = start + u32(start + 4);
  if (ifd + 2 > end) return 1;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return 1;
    if (u16(entry) === 0x0112) {
      const v = u16(entry + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** The EXIF orientation of a JPEG (APP1 "Exif") or PNG (eXIf chunk); 1 when there is none. */
export function exifOrientation(b: Uint8Array): number {
  if (b[0] === 0xff && b[1] === 0xd8) {
    let o = 2;
    while (o + 4 <= b.length && b[o] === 0xff) {
      const marker = b[o + 1];
      const len = (b[o + 2] << 8) | b[o + 3];
      if (marker === 0xda || marker === 0xd9) break;
      if (marker === 0xe1 && String.fromCharCode(...b.subarray(o + 4, o + 8)) === 'Exif')
        return orientationFromTiff(b, o + 10, Math.min(b.length, o + 2 + len));
      o += 2 + len;
    }
    return 1;
  }
  if (b[0] === 0x89 && b[1] === 0x50) {
    let o = 8;
    while (o + 8 <= b.length) {
      const len = b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
      const type = String.fromCharCode(...b.subarray(o + 4, o + 8));
      if (type === 'eXIf') return orientationFromTiff(b, o + 8, Math.min(b.length, o + 8 + len));
      if (type === 'IDAT' || type === 'IEND') break;
      o += 12 + len;
    }
  }
  return 1;
}

/** Applies an EXIF orientation (PIL's `ImageOps.exif_transpose`), giving the upright image. */
export function orient(img: RgbImage, orientation: number): RgbImage {
  if (orientation <= 1) return img;
  const { width: w, height: h, data } = img;
  const swap = orientation >= 5;
  const W = swap ? h : w;
  const H = swap ? w : h;
  const out = new Float32Array(data.length);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      // (sx, sy): the source pixel shown at (x, y) for each of the 8 EXIF orientations.
      let sx: number, sy: number;
      switch (orientation) {
        case 2:
          [sx, sy] = [w - 1 - x, y];
          break;
        case 3:
          [sx, sy] = [w - 1 - x, h - 1 - y];
          break;
        case 4:
          [sx, sy] = [x, h - 1 - y];
          break;
        case 5:
          [sx, sy] = [y, x];
          break;
        case 6:
          [sx, sy] = [y, h - 1 - x];
          break;
        case 7:
          [sx, sy] = [w - 1 - y, h - 1 - x];
          break;
        default:
          [sx, sy] = [w - 1 - y, x];
          break; // 8
      }
      const s = (sy * w + sx) * 3;
      const d = (y * W + x) * 3;
      out[d] = data[s];
      out[d + 1] = data[s + 1];
      out[d + 2] = data[s + 2];
    }
  }
  return { width: W, height: H, data: out };
}
