/**
 * The wasm backend's fused backward kernels (flash-style attention, layerNorm, groupNorm(+SiLU))
 * against the op layer's composite gradient on the cpu backend: the shared parity cases, then
 * sizes they do not reach (query blocks of 64, several GEMM blocks, thread splits by batch and by
 * query block, masks shared by every batch, causal with more keys than queries, long rows, odd
 * spatial sizes). Each case checks that the wasm kernel ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Backend, Tensor } from '@kiln/tensor-core';
import { FUSED_BACKWARD_KERNELS, fusedBackwardSuite, withoutKernels } from './fused-backward.js';
import type { FusedBackwardKernel } from './fused-backward.js';

fusedBackwardSuite('wasm', { dtypes: ['float32', 'float16'] });

interface Case {
  name: string;
  kernel: FusedBackwardKernel;
  shapes: number[][];
  /** Inputs (by index) that take no gradient. */
  frozen?: number[];
  fn: (...xs: Tensor[]) => Tensor;
  tol?: number;
  /** The SIMD task that must run (odd sizes take the cpu reference kernel instead). */
  task?: string;
}

const sdpa =
  (opts: k.AttentionOptions = {}) =>
  (q: Tensor, kk: Tensor, v: Tensor) =>
    k.scaledDotProductAttention(q, kk, v, opts);

const CASES: Case[] = [
  {
    name: 'attention 8 heads × 200 queries × 64 dims (threads by batch, 4 query blocks)',
    kernel: 'attentionBackward',
    shapes: [
      [1, 8, 200, 64],
      [1, 8, 200, 64],
      [1, 8, 200, 64],
    ],
    task: 'task_attention_bwd',
    fn: sdpa(),
  },
  {
    name: 'attention 1 head, 300 queries, 280 keys (threads split query blocks)',
    kernel: 'attentionBackward',
    shapes: [
      [1, 300, 40],
      [1, 280, 40],
      [1, 280, 24],
    ],
    task: 'task_attention_bwd',
    fn: sdpa(),
  },
  {
    name: 'attention 3 heads, causal, 130 queries, 150 keys',
    kernel: 'attentionBackward',
    shapes: [
      [3, 130, 20],
      [3, 150, 20],
      [3, 150, 33],
    ],
    task: 'task_attention_bwd',
    fn: sdpa({ isCausal: true }),
  },
  {
    name: 'attention with a mask shared by every head, 129 × 131',
    kernel: 'attentionBackward',
    shapes: [
      [2, 3, 129, 16],
      [2, 3, 131, 16],
      [2, 3, 131, 16],
      [129, 131],
    ],
    frozen: [3],
    task: 'task_attention_bwd',
    fn: (q, kk, v, m) => k.scaledDotProductAttention(q, kk, v, { attnMask: m }),
  },
  {
    name: 'attention with a per-head boolean mask and causal',
    kernel: 'attentionBackward',
    shapes: [
      [2, 70, 8],
      [2, 70, 8],
      [2, 70, 8],
    ],
    task: 'task_attention_bwd',
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { attnMask: k.rand([2, 70, 70], { seed: 5 }).gt(0.3), isCausal: true }),
  },
  {
    name: 'attention with a large head dimension (E > kc) and scale',
    kernel: 'attentionBackward',
    shapes: [
      [2, 40, 300],
      [2, 50, 300],
      [2, 50, 7],
    ],
    task: 'task_attention_bwd',
    fn: sdpa({ scale: 0.02 }),
  },
  {
    name: 'layerNorm 768-wide rows, affine',
    kernel: 'layerNormBackward',
    shapes: [[2, 77, 768], [768], [768]],
    task: 'task_layernorm_bwd',
    fn: (x, w, b) => k.layerNorm(x, [768], w, b),
  },
  {
    // 2,100 rows: two streamed chunks of whole 33-row partial blocks, sub-blocks of 8 rows, a
    // 260-float row that is not a whole number of 4-vector loop steps.
    name: 'layerNorm 260-wide rows over two chunks, affine',
    kernel: 'layerNormBackward',
    shapes: [[3, 700, 260], [260], [260]],
    task: 'task_layernorm_bwd',
    fn: (x, w, b) => k.layerNorm(x, [260], w, b),
  },
  {
    name: 'layerNorm 321-wide rows, weight only',
    kernel: 'layerNormBackward',
    shapes: [[37, 321], [321]],
    fn: (x, w) => k.layerNorm(x, [321], w),
  },
  {
    name: 'layerNorm over 2 dims, no affine',
    kernel: 'layerNormBackward',
    shapes: [[5, 16, 24]],
    task: 'task_layernorm_bwd',
    fn: (x) => k.layerNorm(x, [16, 24]),
  },
  {
    name: 'groupNorm+SiLU [2, 64, 32, 32], 32 groups',
    kernel: 'groupNormBackward',
    shapes: [[2, 64, 32, 32], [64], [64]],
    task: 'task_groupnorm_bwd',
    fn: (x, w, b) => k.groupNormSilu(x, 32, w, b, 1e-6),
  },
  {
    // 16 units of 36,864 floats: two streamed chunks, the second starting mid-image.
    name: 'groupNorm+SiLU [2, 32, 96, 96], 8 groups, over two chunks',
    kernel: 'groupNormBackward',
    shapes: [[2, 32, 96, 96], [32], [32]],
    task: 'task_groupnorm_bwd',
    fn: (x, w, b) => k.groupNormSilu(x, 8, w, b, 1e-6),
  },
  {
    name: 'groupNorm 7×9 spatial, 4 groups, frozen weight',
    kernel: 'groupNormBackward',
    shapes: [[3, 12, 7, 9], [12], [12]],
    frozen: [1],
    fn: (x, w, b) => k.groupNorm(x, 4, w, b),
  },
  {
    name: 'groupNorm 6×6 spatial, 2 groups, bias only',
    kernel: 'groupNormBackward',
    shapes: [[2, 8, 6, 6]],
    task: 'task_groupnorm_bwd',
    fn: (x) => k.groupNorm(x, 2, null, k.linspace(-1, 1, 8)),
  },
  { name: 'groupNorm+SiLU 3-D input, no affine', kernel: 'groupNormBackward', shapes: [[2, 8, 50]], fn: (x) => k.groupNormSilu(x, 2) },
];

/** Output and input gradients of `c` on the current backend, for a fixed upstream gradient. */
async function grads(c: Case): Promise<Float32Array[]> {
  const xs = c.shapes.map((s, i) => {
    const t = k.randn(s, { seed: 10 + i });
    return c.frozen?.includes(i) ? t : t.requiresGrad_(true);
  });
  const y = k.tidy(() => {
    const out = c.fn(...xs);
    out.backward(k.randn(out.shape as number[], { seed: 99 }));
    return out;
  });
  const out = [(await y.data()) as Float32Array];
  for (const x of xs) if (x.grad) out.push((await x.grad.data()) as Float32Array);
  for (const t of [y, ...xs]) {
    t.grad?.dispose();
    t.dispose();
  }
  return out;
}

/** Runs `fn` counting calls of `name` on `backend`. */
async function counted<T>(backend: Backend, name: FusedBackwardKernel, fn: () => Promise<T>): Promise<[T, number]> {
  const target = backend as unknown as Record<string, (...a: unknown[]) => unknown>;
  const own = Object.getOwnPropertyDescriptor(target, name);
  const original = target[name];
  let calls = 0;
  target[name] = (...a: unknown[]) => {
    calls++;
    return original.apply(backend, a);
  };
  try {
    return [await fn(), calls];
  } finally {
    if (own) Object.defineProperty(target, name, own);
    else delete target[name];
  }
}

describe('wasm fused backward kernels at larger sizes vs the composite on cpu', () => {
  beforeAll(async () => {
    await k.useBackend('wasm');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });
  for (const c of CASES) {
    it(c.name, async () => {
      const cpu = await k.useBackend('cpu');
      const ref = await withoutKernels(cpu, FUSED_BACKWARD_KERNELS, () => grads(c));
      const wasm = (await k.useBackend('wasm')) as k.WasmBackend;
      const tasks = new Set<string>();
      // Kernels run through run(), or runStream() where every thread copies its own chunks.
      const { run, runStream } = wasm.engine;
      wasm.engine.run = (task, ...rest) => {
        tasks.add(task);
        run.call(wasm.engine, task, ...rest);
      };
      wasm.engine.runStream = (task, ...rest) => {
        tasks.add(task);
        runStream.call(wasm.engine, task, ...rest);
      };
      const [got, calls] = await counted(wasm, c.kernel, () => grads(c)).finally(() => {
        wasm.engine.run = run;
        wasm.engine.runStream = runStream;
      });
      expect(calls).toBeGreaterThan(0);
      if (c.task) expect([...tasks]).toContain(c.task);
      expect(got.length).toBe(ref.length);
      const tol = c.tol ?? 2e-4;
      got.forEach((g, j) => {
        let worst = 0;
        let at = -1;
        const e = ref[j];
        // Relative to the tensor's scale: gradients of a sum over many terms cancel.
        let scale = 0;
        for (let i = 0; i < e.length; i++) scale = Math.max(scale, Math.abs(e[i]));
        for (let i = 0; i < e.length; i++) {
          const err = Math.abs(g[i] - e[i]) / (tol * (1 + scale));
          if (!(err <= worst)) {
            worst = err;
            at = i;
          }
        }
        expect(worst, `${j === 0 ? 'output' : `grad ${j - 1}`}: element ${at} is ${g[at]}, composite says ${e[at]}`).toBeLessThanOrEqual(1);
      });
    });
  }
});
