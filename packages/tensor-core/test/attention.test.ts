import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { FUSED_BACKWARD_KERNELS, hideKernels } from './fused-backward.js';

// These test the op layer's composite gradient, so the cpu backend's fused gradients are hidden.
let restore = (): void => {};
beforeAll(async () => {
  restore = hideKernels(await k.useBackend('cpu'), FUSED_BACKWARD_KERNELS);
});
afterAll(() => restore());

/** softmax(q kᵀ·scale + mask + causal) v from primitive ops: autograd through them is the oracle. */
function reference(q: k.Tensor, key: k.Tensor, v: k.Tensor, mask: k.Tensor, scale: number): k.Tensor {
  const [L, S] = [q.shape[q.ndim - 2], key.shape[key.ndim - 2]];
  const causal = k.tensor(
    Float32Array.from({ length: L * S }, (_, i) => (i % S > Math.floor(i / S) ? -Infinity : 0)),
    { shape: [L, S] },
  );
  const s = q.matmul(key.transpose(-1, -2)).mul(scale).add(mask).add(causal);
  return s.softmax(-1).matmul(v);
}

describe('scaledDotProductAttention composite gradient in blocks of query rows', () => {
  it('matches autograd through the primitive ops when L×S is too large for one block', async () => {
    // 2 × 2100 × 2100 scores: the gradient runs in 3 blocks of query rows.
    const [B, L, E] = [2, 2100, 4];
    const scale = 0.7;
    const grads = async (f: (q: k.Tensor, key: k.Tensor, v: k.Tensor, m: k.Tensor) => k.Tensor) => {
      const q = k.randn([B, L, E], { seed: 1 }).requiresGrad_();
      const key = k.randn([B, L, E], { seed: 2 }).requiresGrad_();
      const v = k.randn([B, L, 3], { seed: 3 }).requiresGrad_();
      const mask = k.randn([L, L], { seed: 4 }).mul(0.1);
      const w = k.randn([B, L, 3], { seed: 5 });
      k.tidy(() => f(q, key, v, mask).mul(w).sum().backward());
      return Promise.all([q, key, v].map((t) => t.grad!.data()));
    };
    const got = await grads((q, key, v, m) => k.scaledDotProductAttention(q, key, v, { attnMask: m, isCausal: true, scale }));
    const want = await grads((q, key, v, m) => reference(q, key, v, m, scale));
    got.forEach((g, i) => {
      let worst = 0;
      for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j] - want[i][j]) / (1e-3 + Math.abs(want[i][j])));
      expect(worst, `input ${i}`).toBeLessThan(1e-3);
    });
  }, 300_000); // 2 × 2100² scores through cpu f64 loops, twice: over a minute on a shared 2-core machine

  it('keeps backward memory bounded: peak bytes do not grow with L×S', async () => {
    const peak = (L: number) => {
      const q = k.randn([1, L, 8], { seed: 1 }).requiresGrad_();
      k.resetPeakMemory();
      const base = k.memory().liveBytes;
      k.tidy(() => k.scaledDotProductAttention(q, q, q).sum().backward());
      const p = k.memory().peakBytes - base;
      q.grad!.dispose();
      q.dispose();
      return p;
    };
    // One block holds 2^22 scores: at L = 2048 that is the whole matrix, at 4096 a quarter of it.
    // Unblocked, doubling L would quadruple the peak.
    const [small, large] = [peak(2048), peak(4096)];
    expect(large).toBeLessThan(1.5 * small);
  });
});
