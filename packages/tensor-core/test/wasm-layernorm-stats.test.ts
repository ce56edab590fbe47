/**
 * layerNorm's saved statistics on the wasm backend: a forward that a backward will follow keeps
 * each row's mean and 1/std in the engine's heap (`layerNormWithStats`), the backward reads them
 * instead of summing each row again, and autograd frees them with the graph. Oracles: the rows'
 * statistics in f64, the backward that computes them itself, and the cpu reference kernel.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { View } from '@kiln/tensor-core';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import type { WasmBackend } from '../src/backends/wasm/index.js';
import { seededView } from './seeded-view.js';

type V = View<Float32Array>;

/** Largest |a − b| relative to the largest |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** `v` copied into b's heap, where the kernels use it in place. */
const inHeap = (b: WasmBackend, v: V): V => {
  const storage = b.engine.heap!.f32(v.storage.length)!;
  storage.set(v.storage);
  return { ...v, storage };
};

describe('layerNorm statistics kept by the forward (wasm)', () => {
  const engines = [createWasmBackend({ threads: 1 }), createWasmBackend({ threads: 3, parallelMinUs: 0 })];
  afterAll(async () => (await Promise.all(engines)).forEach((b) => b.dispose()));

  // 1100 rows of 320 (x off the mean by ~3): three stream chunks of 2^17 floats, so each chunk's
  // rows must land at their global index.
  const [rows, size] = [1100, 320];
  const x0 = seededView([rows, size], 1);
  x0.storage.forEach((v, i) => (x0.storage[i] = v + 3 + (i % 7) * 0.1));
  const w = seededView([size], 2);
  const bias = seededView([size], 3);
  const gy = seededView([rows, size], 4);

  for (const [i, threads] of [1, 3].entries()) {
    it(`writes each row's mean and 1/std and gives the same y, on ${threads} thread(s)`, async () => {
      const b = await engines[i];
      for (const x of [x0, inHeap(b, x0)]) {
        const [y, stats] = b.layerNormWithStats(x, w, bias, size, 1e-5);
        expect(stats).not.toBeNull();
        expect(b.engine.heapAddr(stats as Float32Array)).toBeGreaterThan(0);
        expect(Array.from(y)).toEqual(Array.from(b.layerNorm(x, w, bias, size, 1e-5)));
        const want = new Float64Array(rows * 2);
        for (let r = 0; r < rows; r++) {
          const row = x.storage.subarray(r * size, (r + 1) * size);
          const mean = row.reduce((a, v) => a + v, 0) / size;
          const v = row.reduce((a, q) => a + (q - mean) ** 2, 0) / size;
          want[2 * r] = mean;
          want[2 * r + 1] = 1 / Math.sqrt(v + 1e-5);
        }
        expect(relErr(stats!, want)).toBeLessThan(1e-6);
        b.free(stats!);
      }
    });

    it(`gives the gradients of the backward that sums the rows itself, on ${threads} thread(s)`, async () => {
      const b = await engines[i];
      const cpu = new k.CpuBackend();
      const x = inHeap(b, x0);
      const [, stats] = b.layerNormWithStats(x, w, bias, size, 1e-5);
      const saved = b.layerNormBackward(x, w, bias, size, 1e-5, gy, stats);
      const fresh = b.layerNormBackward(x, w, bias, size, 1e-5, gy);
      const ref = cpu.layerNormBackward(x, w, bias, size, 1e-5, gy);
      for (let j = 0; j < 3; j++) {
        expect(relErr(saved[j]!, fresh[j]!)).toBeLessThan(1e-5);
        expect(relErr(saved[j]!, ref[j]!)).toBeLessThan(1e-5);
      }
      b.free(stats!);
    });
  }

  it('keeps none where the SIMD kernel does not run (rows not a multiple of 4)', async () => {
    const b = await engines[0];
    expect(b.layerNormWithStats(seededView([40, 30], 5), null, null, 30, 1e-5)[1]).toBeNull();
  });
});

describe('layerNorm statistics through autograd (wasm)', () => {
  /** Bytes of live blocks in the wasm engine's heap. */
  const heapBytes = async () => ((await k.initBackend('wasm')) as WasmBackend).engine.heap!.bytes;

  it('are kept by a recorded forward and freed by backward(), or by disposing the output', async () => {
    await k.useBackend('wasm');
    const x = k.randn([256, 64], { seed: 1 }).requiresGrad_(true);
    const w = k.randn([64], { seed: 2 }).requiresGrad_(true);
    const g = k.randn([256, 64], { seed: 3 });
    const yBytes = 256 * 64 * 4;
    const statsBytes = 256 * 2 * 4;

    const before = await heapBytes();
    const inference = k.noGrad(() => k.layerNorm(x, [64], w));
    expect((await heapBytes()) - before).toBe(yBytes);
    inference.dispose();

    const y = k.layerNorm(x, [64], w);
    expect((await heapBytes()) - before).toBe(yBytes + statsBytes);
    y.backward(g, { retainGraph: true });
    const dx1 = await x.grad!.data();
    x.grad!.dispose();
    x.grad = null;
    w.grad!.dispose();
    w.grad = null;
    // Retained: the statistics serve a second backward, with the same gradients.
    y.backward(g);
    expect(Array.from(await x.grad!.data())).toEqual(Array.from(dx1));
    x.grad!.dispose();
    w.grad!.dispose();
    x.grad = w.grad = null;
    expect((await heapBytes()) - before).toBe(yBytes);
    y.dispose();
    expect(await heapBytes()).toBe(before);

    const unused = k.layerNorm(x, [64], w);
    unused.dispose();
    expect(await heapBytes()).toBe(before);
    for (const t of [x, w, g]) t.dispose();
    await k.useBackend('cpu');
  });

  it('give the gradients of the cpu backend', async () => {
    const run = async (backend: string) => {
      await k.useBackend(backend);
      const x = k.randn([600, 320], { seed: 4 }).add(2).requiresGrad_(true);
      const w = k.randn([320], { seed: 5 }).requiresGrad_(true);
      const b = k.randn([320], { seed: 6 }).requiresGrad_(true);
      k.layerNorm(x, [320], w, b).backward(k.randn([600, 320], { seed: 7 }));
      return Promise.all([x, w, b].map((t) => t.grad!.data()));
    };
    const want = await run('cpu');
    const got = await run('wasm');
    for (let j = 0; j < 3; j++) expect(relErr(got[j], want[j])).toBeLessThan(1e-5);
    await k.useBackend('cpu');
  });
});
