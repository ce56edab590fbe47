/**
 * How the wasm engine shares work between threads: small work stays on the calling thread
 * (`parallelMinUs`), and the GEMM's dynamically claimed chunks give bit-identical results for any
 * thread count, batch layout and odd shape (each output element is summed by one thread in K order).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import type { WasmBackend } from '../src/backends/wasm/index.js';
import type { View } from '@kiln/tensor-core';
import { seededView } from './seeded-view.js';

type V = View<Float32Array>;
const view = seededView;

describe('wasm thread sharing', () => {
  const made: Promise<WasmBackend>[] = [];
  const make = (o: Parameters<typeof createWasmBackend>[0]) => {
    const b = createWasmBackend(o);
    made.push(b);
    return b;
  };
  const one = make({ threads: 1 });
  const three = make({ threads: 3, parallelMinUs: 0, kernel: { chunks: 3 } });
  const lazy = make({ threads: 2, parallelMinUs: 1e9 });
  afterAll(async () => {
    for (const b of made) (await b).dispose();
  });

  it('threadsFor keeps work under the threshold on the calling thread', async () => {
    const e = (await make({ threads: 2, parallelMinUs: 50 })).engine;
    expect(e.parallelMinUs).toBe(50);
    expect(e.threadsFor(49.9)).toBe(1);
    expect(e.threadsFor(50)).toBe(2);
    expect((await three).engine.threadsFor(0)).toBe(3);
  });

  it.each([
    ['square, tall', [1, 37, 29], [1, 29, 211]],
    ['wide N, ragged edges', [1, 5, 64], [1, 64, 1003]],
    ['tall M', [1, 301, 17], [1, 17, 9]],
    ['batched, fewer than threads', [2, 33, 40], [2, 40, 70]],
    ['batched, more than threads', [7, 12, 20], [7, 20, 13]],
    ['one product, B packed once for all threads (ragged kc and nc blocks)', [1, 150, 300], [1, 300, 1100]],
  ])('GEMM %s: identical bits on 1 thread, 3 threads in chunks and a thresholded engine', async (_name, as, bs) => {
    const a = view(as, 1);
    const b = view(bs, 2);
    const ref = (await one).matmul(a, b);
    expect(Array.from((await three).matmul(a, b))).toEqual(Array.from(ref));
    expect(Array.from((await lazy).matmul(a, b))).toEqual(Array.from(ref));
    // Spot check against a plain f64 sum.
    const [, M, K] = as;
    const N = bs[2];
    const i = M - 1;
    const j = N - 1;
    let s = 0;
    for (let k = 0; k < K; k++) s += a.storage[i * K + k] * b.storage[k * N + j];
    expect(ref[i * N + j]).toBeCloseTo(s, 4);
  });

  it('Winograd conv2d and both gradients: identical bits on 1 thread and 3 threads claiming planes', async () => {
    const p = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 } as const;
    const x = view([2, 16, 21, 23], 11);
    const w = view([12, 16, 3, 3], 12);
    const gy = view([2, 12, 21, 23], 13);
    const [a, b] = [await one, await three];
    expect(Array.from(b.conv2d(x, w, p))).toEqual(Array.from(a.conv2d(x, w, p)));
    expect(Array.from(b.conv2dInputGrad(gy, w, x.shape, p))).toEqual(Array.from(a.conv2dInputGrad(gy, w, x.shape, p)));
    expect(Array.from(b.conv2dWeightGrad(x, gy, w.shape, p))).toEqual(Array.from(a.conv2dWeightGrad(x, gy, w.shape, p)));
  });

  it('GEMM with a transposed B (whole strided strips and a ragged one) matches an f64 sum', async () => {
    const [M, K, N] = [19, 23, 37];
    const bt = view([1, N, K], 5);
    // The same storage read as B[K, N] with strides (1, K): B[k][n] = bt[n][k].
    const b: V = { ...bt, shape: [1, K, N], strides: [N * K, 1, K] };
    const a = view([1, M, K], 6);
    const got = (await three).matmul(a, b);
    expect(Array.from((await one).matmul(a, b))).toEqual(Array.from(got));
    let worst = 0;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.storage[i * K + k] * bt.storage[j * K + k];
        worst = Math.max(worst, Math.abs(got[i * N + j] - s));
      }
    expect(worst).toBeLessThan(1e-5);
  });

  it('elementwise SIMD ops give the same result under the threshold as across threads', async () => {
    const x = view([1 << 15], 3);
    const y = view([1 << 15], 4);
    const all = (await three).unary('silu', x, 'float32');
    const alone = (await lazy).unary('silu', x, 'float32');
    expect(Array.from(alone)).toEqual(Array.from(all));
    expect(Array.from((await lazy).binary('mul', x, y, 'float32'))).toEqual(Array.from((await three).binary('mul', x, y, 'float32')));
  });
});
