import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadImageFolder } from '../src/node.js';
import { tempDir } from './helpers.js';

// test/fixtures/pattern.webp: lossless 6×4, pixel (x, y) = (40x, 60y, 200), made by scripts/make_webp_fixture.py (Pillow).
describe('WebP', () => {
  it('decodes in an image folder', async () => {
    const dir = tempDir('webp');
    copyFileSync(fileURLToPath(new URL('./fixtures/pattern.webp', import.meta.url)), join(dir, 'p.webp'));
    const [ex] = await loadImageFolder(dir, { prompt: 'p', minSide: 1, what: 'instance' });
    expect([ex.image.width, ex.image.height]).toEqual([6, 4]);
    const px = (x: number, y: number) =>
      Array.from(ex.image.data.subarray((y * 6 + x) * 3, (y * 6 + x) * 3 + 3)).map((v) => Math.round(v * 255));
    expect(px(0, 0)).toEqual([0, 0, 200]);
    expect(px(5, 3)).toEqual([200, 180, 200]);
  });
});
