/**
 * The wasm engine's calibration (SIMD128 multiply-add peak, copy bandwidth) that benchmarks divide
 * by: figures for 1 and for all threads, and a copy loop that really copies (each thread its share).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import { PEAK } from '../src/backends/wasm/kernels.js';

describe('wasm calibration', () => {
  const backends = [createWasmBackend({ threads: 1 }), createWasmBackend({ threads: 2 })];
  afterAll(async () => {
    for (const b of backends) (await b).dispose();
  });

  it('measures positive, finite peaks for 1 and for all threads', async () => {
    const wasm = await backends[1];
    const c = wasm.calibrate({ reps: 2, ms: 5 });
    expect(c.relaxed).toBe(wasm.engine.relaxed);
    expect(c.perThreads.map((p) => p.threads)).toEqual([1, 2]);
    for (const p of c.perThreads) {
      for (const x of [p.gflops, p.copyGBs, p.gflopsMedian, p.copyMedian]) {
        expect(Number.isFinite(x)).toBe(true);
        expect(x).toBeGreaterThan(0);
      }
      expect(p.gflopsRuns).toHaveLength(2);
      expect(p.gflops).toBe(Math.max(...p.gflopsRuns));
    }
  });

  it('gives one entry on a single-threaded engine', async () => {
    const c = (await backends[0]).calibrate({ reps: 1, ms: 5 });
    expect(c.perThreads.map((p) => p.threads)).toEqual([1]);
  });

  it('task_peak_copy copies every byte of the range, split across threads', async () => {
    const e = (await backends[1]).engine;
    e.reset();
    const bytes = 64 * 1000;
    const src = e.alloc(bytes);
    const dst = e.alloc(bytes);
    const f = e.f32;
    for (let i = 0; i < bytes / 4; i++) {
      f[src / 4 + i] = i * 0.5 - 7;
      f[dst / 4 + i] = NaN;
    }
    const d = new Array<number>(5);
    [d[PEAK.iters], d[PEAK.out], d[PEAK.src], d[PEAK.dst], d[PEAK.bytes]] = [1, 0, src, dst, bytes];
    e.run('task_peak_copy', e.desc(d));
    expect(Array.from(e.f32.subarray(dst / 4, dst / 4 + bytes / 4))).toEqual(Array.from(e.f32.subarray(src / 4, src / 4 + bytes / 4)));
    e.reset();
  });
});
