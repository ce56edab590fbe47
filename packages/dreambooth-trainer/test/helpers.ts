import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { writeTinyDreamBoothModel } from '../scripts/tiny-model.js';

export const tempDir = (name: string) => mkdtempSync(join(tmpdir(), `kiln-db-${name}-`));

/** A smooth RGB test pattern (w×h), different per `seed`. */
export function pattern(w: number, h: number, seed: number): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * 255) / w;
      data[i + 1] = (y * 255) / h;
      data[i + 2] = (seed * 67 + x * y) % 256;
    }
  return data;
}

/** Writes `n` instance images (PNG and JPEG, odd sizes) into a new folder. */
export function writeImages(n: number, dir = tempDir('images')): string {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const [w, h] = [20 + 3 * i, 24 - i];
    const rgb = pattern(w, h, i);
    if (i % 2 === 0) writeFileSync(join(dir, `img${i}.png`), encodePng({ width: w, height: h, data: rgb, channels: 3, depth: 8 }));
    else {
      const rgba = new Uint8Array(w * h * 4);
      for (let p = 0; p < w * h; p++) rgba.set([rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2], 255], p * 4);
      writeFileSync(join(dir, `img${i}.jpg`), jpeg.encode({ width: w, height: h, data: rgba }, 95).data);
    }
  }
  return dir;
}

let model: Promise<string> | undefined;
/** The tiny base model, written once per test file. */
export function tinyModel(): Promise<string> {
  model ??= (async () => {
    const dir = tempDir('model');
    await writeTinyDreamBoothModel(dir);
    return dir;
  })();
  return model;
}
