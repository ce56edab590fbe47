import { describe, expect, it } from 'vitest';
import { downloadLine, downloadReporter, formatBytes } from '../src/progress.js';

describe('download progress', () => {
  it('formats bytes in decimal units with three significant digits', () => {
    expect([0, 999, 1000, 45_100_000, 3_440_000_000, 123_456_789_012].map(formatBytes)).toEqual([
      '0 B',
      '999 B',
      '1.00 kB',
      '45.1 MB',
      '3.44 GB',
      '123 GB',
    ]);
  });

  it('shows size so far of the total, percent, speed and time left', () => {
    const elapsedMs = (1.2e9 / 45.1e6) * 1000; // 45.1 MB/s so far
    expect(downloadLine({ path: 'unet/diffusion_pytorch_model.safetensors', bytes: 1.2e9, total: 3.44e9, elapsedMs })).toBe(
      'downloading unet/diffusion_pytorch_model.safetensors 1.20 GB/3.44 GB 34% 45.1 MB/s ETA 50s',
    );
    expect(downloadLine({ path: 'a', bytes: 2000, total: null, elapsedMs: 1000 })).toBe('downloading a 2.00 kB 2.00 kB/s');
    // Resumed at 3 GB: the speed and time left count only this run's 100 MB in 2 s.
    expect(downloadLine({ path: 'u', bytes: 3.1e9, total: 3.44e9, elapsedMs: 2000, resumedFrom: 3e9 })).toBe(
      'downloading u 3.10 GB/3.44 GB 90% 50.0 MB/s ETA 7s',
    );
  });

  it('redraws a terminal at most 10 times a second and prints a log every 5 s and at each file end', () => {
    let now = 0;
    const drawn: string[] = [];
    const tty = downloadReporter({ err: () => {}, progress: (l) => drawn.push(l) }, '', () => now);
    for (now = 0; now <= 1000; now += 10) tty({ path: 'a', bytes: now, total: 1000 });
    expect(drawn).toHaveLength(11); // t = 0, 100, …, 1000 (the last is the file's end)
    expect(drawn.at(-1)).toMatch(/^downloading a 1.00 kB\/1.00 kB 100% /);

    const logged: string[] = [];
    const log = downloadReporter({ err: (l) => logged.push(l) }, 'kiln generate: ', () => now);
    for (now = 0; now < 12_000; now += 1000) log({ path: 'b', bytes: now, total: 20_000 });
    log({ path: 'b', bytes: 20_000, total: 20_000 });
    log({ path: 'c', bytes: 1, total: 10 });
    expect(logged.map((l) => l.split(' ').slice(0, 4).join(' '))).toEqual([
      'kiln generate: downloading b',
      'kiln generate: downloading b',
      'kiln generate: downloading b',
      'kiln generate: downloading b',
      'kiln generate: downloading c',
    ]);
    expect(logged[3]).toMatch(/20.0 kB\/20.0 kB 100%/);
  });
});
