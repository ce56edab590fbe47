/**
 * The wasm backend's configurations: the plain-SIMD fallback (no relaxed FMA), one thread, more
 * threads than cores, and other register tiles all compute the same as the cpu reference,
 * forward kernels and fused backward kernels alike.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '@kiln/tensor-core';
import type { View } from '@kiln/tensor-core';
import { createWasmBackend } from '../src/backends/wasm/index.js';
import type { WasmBackendOptions } from '../src/backends/wasm/index.js';
import { hasRelaxedSimd, hasSimd } from '../src/backends/wasm/emit.js';
import { seededView } from './seeded-view.js';

type V = View<Float32Array>;
const view = seededView;

function maxRelErr(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < e.length; i++) worst = Math.max(worst, Math.abs(a[i] - e[i]) / (1 + Math.abs(e[i])));
  return worst;
}

const cpu = new CpuBackend();
const configs: [string, WasmBackendOptions][] = [
  ['plain SIMD, 1 thread', { threads: 1, relaxedSimd: false }],
  ['plain SIMD, 3 threads', { threads: 3, relaxedSimd: false }],
  ['relaxed SIMD where available, 4 threads', { threads: 4 }],
  ['6x8 tile, unrolled, small blocks', { threads: 2, kernel: { mr: 6, nr: 8, unroll: 2, kc: 64, mc: 30, nc: 72 } }],
  ['8x8 tile with lane shuffles', { threads: 2, kernel: { mr: 8, nr: 8, splat: 'shuffle' } }],
];

describe('wasm backend configurations', () => {
  it('detects SIMD and reports relaxed SIMD (validated with a tiny module)', () => {
    expect(hasSimd()).toBe(true);
    expect(typeof hasRelaxedSimd()).toBe('boolean');
  });

  for (const [name, options] of configs) {
    it(name, async () => {
      const be = await createWasmBackend(options);
      try {
        if (options.relaxedSimd === false) expect(be.engine.relaxed).toBe(false);
        const a = view([3, 37, 129], 1);
        const b = view([3, 129, 45], 2);
        expect(maxRelErr(be.matmul(a, b), cpu.matmul(a, b))).toBeLessThan(1e-5);
        const x = view([2, 5, 9, 11], 3);
        const w = view([7, 5, 3, 3], 4);
        const p = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 } as const;
        expect(maxRelErr(be.conv2d(x, w, p), cpu.conv2d(x, w, p))).toBeLessThan(1e-5);
        const gy = view([2, 7, 9, 11], 5);
        expect(maxRelErr(be.conv2dInputGrad(gy, w, x.shape, p), cpu.conv2dInputGrad(gy, w, x.shape, p))).toBeLessThan(1e-5);
        expect(maxRelErr(be.conv2dWeightGrad(x, gy, w.shape, p), cpu.conv2dWeightGrad(x, gy, w.shape, p))).toBeLessThan(1e-5);
        const q = view([3, 70, 16], 6);
        const kk = view([3, 90, 16], 7);
        const v = view([3, 90, 8], 8);
        expect(maxRelErr(be.attention(q, kk, v, null, false, 0.25), cpu.attention(q, kk, v, null, false, 0.25))).toBeLessThan(1e-5);
        expect(maxRelErr(be.attention(q, kk, v, null, true, 0.25), cpu.attention(q, kk, v, null, true, 0.25))).toBeLessThan(1e-5);
        // Fused backward kernels (threads by batch or by query block, partial sums), against the cpu reference.
        const go = view([3, 70, 8], 9);
        const shared: V = { ...view([70, 90], 10), shape: [3, 70, 90], strides: [0, 90, 1] };
        for (const [mask, causal] of [
          [null, false],
          [null, true],
          [shared, false],
        ] as const) {
          const got = be.attentionBackward(q, kk, v, mask, causal, 0.25, go);
          const ref = cpu.attentionBackward(q, kk, v, mask, causal, 0.25, go);
          got.forEach((g, i) => expect(maxRelErr(g, ref[i]), `attention grad ${i}`).toBeLessThan(1e-4));
        }
        const xn = view([6, 12, 20], 11);
        const gn = view([6, 12, 20], 12);
        const [wn, bn] = [view([12], 13), view([12], 14)];
        const gnGot = be.groupNormBackward(xn, 3, wn, bn, 1e-5, true, gn);
        const gnRef = cpu.groupNormBackward(xn, 3, wn, bn, 1e-5, true, gn);
        gnGot.forEach((g, i) => expect(maxRelErr(g!, gnRef[i]!), `groupNorm grad ${i}`).toBeLessThan(1e-4));
        const [wl, bl] = [view([20], 15), view([20], 16)];
        const lnGot = be.layerNormBackward(xn, wl, bl, 20, 1e-5, gn);
        const lnRef = cpu.layerNormBackward(xn, wl, bl, 20, 1e-5, gn);
        lnGot.forEach((g, i) => expect(maxRelErr(g!, lnRef[i]!), `layerNorm grad ${i}`).toBeLessThan(1e-4));
      } finally {
        be.dispose();
      }
    });
  }
});
