import { readFileSync } from 'node:fs';
import { encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { DatasetError, DreamBoothDataset, decodeImage, exifOrientation, resizeBilinear } from '../src/index.js';
import { pattern } from './helpers.js';

// PIL 9.4's Image.resize(BILINEAR) in float mode, made by scripts/make_resize_reference.py.
const reference = JSON.parse(readFileSync(new URL('./fixtures/resize-reference.json', import.meta.url), 'utf8')) as {
  cases: { w: number; h: number; W: number; H: number; src: number[]; out: number[] }[];
};

/** A JPEG with an APP1 Exif segment carrying Orientation = `o` (big-endian TIFF). */
function jpegWithOrientation(w: number, h: number, rgb: Uint8Array, o: number): Uint8Array {
  const rgba = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) rgba.set([rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2], 255], p * 4);
  const body = new Uint8Array(jpeg.encode({ width: w, height: h, data: rgba }, 100).data);
  const tiff = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0, 0, 0, 0, 0];
  const payload = [...Array.from('Exif').map((ch) => ch.charCodeAt(0)), 0, 0, ...tiff];
  const len = payload.length + 2;
  return new Uint8Array([0xff, 0xd8, 0xff, 0xe1, len >> 8, len & 255, ...payload, ...body.subarray(2)]);
}

describe('decodeImage', () => {
  it('converts grayscale, 16-bit, palette and alpha PNGs to RGB instead of refusing them', () => {
    const gray = decodeImage(encodePng({ width: 2, height: 1, data: new Uint8Array([0, 255]), channels: 1, depth: 8 }), 'g.png');
    expect(Array.from(gray.data)).toEqual([0, 0, 0, 1, 1, 1]);
    const deep = decodeImage(encodePng({ width: 1, height: 1, data: new Uint16Array([65535, 0, 32768]), channels: 3, depth: 16 }), 'd.png');
    expect(deep.data[0]).toBe(1);
    expect(deep.data[2]).toBeCloseTo(32768 / 65535, 6);
    const alpha = decodeImage(encodePng({ width: 1, height: 1, data: new Uint8Array([255, 0, 0, 0]), channels: 4, depth: 8 }), 'a.png');
    expect(Array.from(alpha.data)).toEqual([1, 0, 0]); // PIL's convert('RGB') drops alpha
    const pal = decodeImage(
      encodePng({
        width: 2,
        height: 1,
        data: new Uint8Array([1, 0]),
        channels: 1,
        depth: 8,
        palette: [
          [255, 0, 0],
          [0, 0, 255],
        ],
      }),
      'p.png',
    );
    expect(Array.from(pal.data)).toEqual([0, 0, 1, 1, 0, 0]);
  });

  it('honours EXIF orientation (6: rotate 90° clockwise)', () => {
    const [w, h] = [8, 4];
    const rgb = new Uint8Array(w * h * 3);
    rgb.fill(255, 0, 3); // top-left pixel white, the rest black
    const bytes = jpegWithOrientation(w, h, rgb, 6);
    expect(exifOrientation(bytes)).toBe(6);
    const img = decodeImage(bytes, 'o.jpg');
    expect([img.width, img.height]).toEqual([4, 8]);
    expect(img.data[(0 * 4 + 3) * 3]).toBeGreaterThan(0.7); // now the top-right corner
  });

  it('refuses undecodable bytes and unknown formats by name', () => {
    expect(() => decodeImage(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5, 6]), 'bad.png')).toThrow(DatasetError);
    expect(() => decodeImage(new TextEncoder().encode('hello world'), 'notes.jpg')).toThrow(/notes.jpg: not a PNG, JPEG or WebP/);
  });
});

describe('resizeBilinear', () => {
  it("matches PIL's bilinear resize (antialiased when shrinking)", () => {
    for (const c of reference.cases) {
      const out = resizeBilinear({ width: c.w, height: c.h, data: Float32Array.from(c.src) }, c.W, c.H);
      for (let i = 0; i < c.out.length; i++) expect(out.data[i]).toBeCloseTo(c.out[i], 5);
    }
  });
});

describe('DreamBoothDataset', () => {
  const ex = (i: number) => ({
    name: `${i}`,
    prompt: 'p',
    image: decodeImage(encodePng({ width: 12, height: 9, data: pattern(12, 9, i), channels: 3, depth: 8 }), `${i}`),
  });
  it('has diffusers length, seeded reproducible order, and crops the same pixels for the same (seed, epoch)', () => {
    const d = new DreamBoothDataset([ex(0), ex(1), ex(2)], [ex(3), ex(4), ex(5), ex(6), ex(7)], {
      resolution: 8,
      centerCrop: false,
      randomFlip: true,
      seed: 5,
    });
    expect(d.length).toBe(5);
    expect(d.order(0).slice().sort()).toEqual([0, 1, 2, 3, 4]);
    expect(d.order(1)).toEqual(new DreamBoothDataset([ex(0)], [ex(1), ex(2), ex(3), ex(4), ex(5)], d.options).order(1));
    const b = d.batches(0, 2);
    expect(b.map((x) => x.instance.length)).toEqual([2, 2, 1]);
    expect(b[0].instance).toEqual(
      d
        .order(0)
        .slice(0, 2)
        .map((i) => i % 3),
    );
    expect(d.pixels(0, 1, 3)).toEqual(d.pixels(0, 1, 3));
    const p = d.pixels(0, 1, 0);
    expect(p.length).toBe(3 * 8 * 8);
    expect(Math.min(...p)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...p)).toBeLessThanOrEqual(1);
  });
});
