/**
 * Parity of a backend's fused backward kernels (`attentionBackward`, `layerNormBackward`,
 * `groupNormBackward`) against the op layer's composite gradient computed on the cpu backend with
 * its own fused gradients hidden. A backend's test file calls
 * `fusedBackwardSuite('wasm', { dtypes: ['float32'] })`; every case checks that the kernel under
 * test really ran, so a backend without it fails instead of comparing the composite with itself.
 *
 * For float16 the reference is the composite in float32 on the same f16-rounded inputs and
 * upstream gradient: the fused kernels accumulate in f32 and round once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Backend, Tensor } from '@kiln/tensor-core';
import { makeInputs } from './op-cases.js';
import type { InputSpec, OpCase } from './op-cases.js';

export type FusedBackwardKernel = 'attentionBackward' | 'layerNormBackward' | 'groupNormBackward';
export const FUSED_BACKWARD_KERNELS: readonly FusedBackwardKernel[] = ['attentionBackward', 'layerNormBackward', 'groupNormBackward'];

export interface FusedBackwardCase extends OpCase {
  kernel: FusedBackwardKernel;
}

const n = (...shape: number[]): InputSpec => ({ shape });
/** An input that takes no gradient (a mask, a frozen weight). */
const fixed = (...shape: number[]): InputSpec => ({ shape, grad: false });

export const FUSED_BACKWARD_CASES: FusedBackwardCase[] = [
  // layerNorm: with and without affine, several trailing dims, odd sizes and rows longer than a workgroup.
  { kernel: 'layerNormBackward', name: 'layerNorm affine', inputs: [n(2, 3, 8), n(8), n(8)], fn: (x, w, b) => k.layerNorm(x, [8], w, b) },
  { kernel: 'layerNormBackward', name: 'layerNorm weight only, odd rows', inputs: [n(5, 7), n(7)], fn: (x, w) => k.layerNorm(x, [7], w) },
  { kernel: 'layerNormBackward', name: 'layerNorm no affine, 2 dims', inputs: [n(3, 5, 6)], fn: (x) => k.layerNorm(x, [5, 6]) },
  {
    kernel: 'layerNormBackward',
    name: 'layerNorm frozen weight',
    inputs: [n(4, 6), fixed(6), n(6)],
    fn: (x, w, b) => k.layerNorm(x, [6], w, b, 1e-6),
  },
  {
    kernel: 'layerNormBackward',
    name: 'layerNorm 257-wide rows',
    inputs: [n(2, 33, 257), n(257), n(257)],
    fn: (x, w, b) => k.layerNorm(x, [257], w, b),
  },
  {
    kernel: 'layerNormBackward',
    name: 'layerNorm of transposed input',
    inputs: [n(6, 4, 3), n(4), n(4)],
    fn: (x, w, b) => k.layerNorm(x.transpose(1, 2), [4], w, b),
  },
  {
    kernel: 'layerNormBackward',
    name: 'layerNorm, gradient broadcast from a row sum (0 strides)',
    inputs: [n(4, 12), n(12), n(12)],
    fn: (x, w, b) => k.layerNorm(x, [12], w, b).sum(-1),
  },
  // groupNorm(+SiLU): affine or not, 3-D and 4-D inputs, odd spatial sizes, frozen affine.
  {
    kernel: 'groupNormBackward',
    name: 'groupNorm affine',
    inputs: [n(2, 4, 3, 3), n(4), n(4)],
    fn: (x, w, b) => k.groupNorm(x, 2, w, b, 1e-5),
  },
  {
    kernel: 'groupNormBackward',
    name: 'groupNorm+silu',
    inputs: [n(2, 6, 2, 3), n(6), n(6)],
    fn: (x, w, b) => k.groupNormSilu(x, 3, w, b, 1e-6),
  },
  { kernel: 'groupNormBackward', name: 'groupNorm no affine 3-D', inputs: [n(1, 4, 5)], fn: (x) => k.groupNorm(x, 4) },
  { kernel: 'groupNormBackward', name: 'groupNorm+silu no affine', inputs: [n(2, 6, 7, 5)], fn: (x) => k.groupNormSilu(x, 3) },
  {
    kernel: 'groupNormBackward',
    name: 'groupNorm+silu frozen bias',
    inputs: [n(2, 8, 5, 3), n(8), fixed(8)],
    fn: (x, w, b) => k.groupNormSilu(x, 4, w, b),
  },
  {
    kernel: 'groupNormBackward',
    name: 'groupNorm+silu 32 groups, 9x9',
    inputs: [n(2, 64, 9, 9), n(64), n(64)],
    fn: (x, w, b) => k.groupNormSilu(x, 32, w, b, 1e-6),
  },
  {
    kernel: 'groupNormBackward',
    name: 'groupNorm of permuted input',
    inputs: [n(2, 5, 3, 4), n(4), n(4)],
    fn: (x, w, b) => k.groupNorm(x.permute([0, 3, 1, 2]), 2, w, b),
  },
  {
    kernel: 'groupNormBackward',
    name: 'groupNorm+silu, gradient broadcast from a spatial mean (0 strides)',
    inputs: [n(2, 6, 4, 5), n(6), n(6)],
    fn: (x, w, b) => k.groupNormSilu(x, 3, w, b).mean([2, 3]),
  },
  // Attention: plain, causal (square and not), additive and boolean masks, odd and tile-crossing sizes.
  {
    kernel: 'attentionBackward',
    name: 'sdpa',
    inputs: [n(2, 2, 5, 4), n(2, 2, 6, 4), n(2, 2, 6, 3)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa causal scale',
    inputs: [n(1, 5, 4), n(1, 5, 4), n(1, 5, 4)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { isCausal: true, scale: 0.3 }),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa causal, fewer queries than keys',
    inputs: [n(2, 7, 4), n(2, 9, 4), n(2, 9, 5)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { isCausal: true }),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa float mask',
    inputs: [n(2, 3, 4), n(2, 5, 4), n(2, 5, 2), fixed(3, 5)],
    fn: (q, kk, v, m) => k.scaledDotProductAttention(q, kk, v, { attnMask: m }),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa bool mask + causal',
    inputs: [n(2, 6, 4), n(2, 6, 4), n(2, 6, 3)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { attnMask: k.arange(6).lt(5).reshape([1, 6]).expand([6, 6]), isCausal: true }),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa, gradient broadcast from a sum over features (0 strides)',
    inputs: [n(2, 6, 4), n(2, 7, 4), n(2, 7, 5)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v).sum(-1),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa odd sizes',
    inputs: [n(3, 33, 17), n(3, 65, 17), n(3, 65, 9)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v),
  },
  {
    kernel: 'attentionBackward',
    name: 'sdpa 130 tokens, 40 dims, heads transposed',
    inputs: [n(1, 130, 2, 40), n(1, 130, 2, 40), n(1, 130, 2, 40)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q.transpose(1, 2), kk.transpose(1, 2), v.transpose(1, 2)),
  },
];

export interface FusedBackwardOptions {
  /** Storage dtypes to test (default float32 only); float16 where the backend supports it. */
  dtypes?: readonly ('float32' | 'float16')[];
  /** Kernels to test (default all three). */
  kernels?: readonly FusedBackwardKernel[];
  atol?: number;
  rtol?: number;
}

type Kernels = Partial<Pick<Backend, FusedBackwardKernel>>;

/**
 * Hides `names` on `backend` (so the op layer takes the composite); returns the function that
 * puts them back.
 */
export function hideKernels(backend: Backend, names: readonly (keyof Backend)[]): () => void {
  const target = backend as unknown as Record<string, unknown>;
  const saved = names.map((name) => [name, Object.getOwnPropertyDescriptor(target, name)] as const);
  for (const name of names) Object.defineProperty(target, name, { value: undefined, configurable: true, writable: true });
  return () => {
    for (const [name, desc] of saved) {
      if (desc) Object.defineProperty(target, name, desc);
      else delete target[name];
    }
  };
}

/** Runs `fn` with `names` hidden on `backend`, restoring them afterwards even when `fn` throws. */
export async function withoutKernels<T>(backend: Backend, names: readonly (keyof Backend)[], fn: () => T | Promise<T>): Promise<T> {
  const restore = hideKernels(backend, names);
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** Runs `fn` counting the calls of `name` on `backend`. */
async function counting<T>(backend: Backend, name: FusedBackwardKernel, fn: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const target = backend as Kernels;
  const own = Object.getOwnPropertyDescriptor(target, name);
  const original = target[name] as ((...args: unknown[]) => unknown) | undefined;
  if (!original) throw new Error(`backend '${backend.name}' has no ${name} kernel`);
  let calls = 0;
  Object.defineProperty(target, name, {
    configurable: true,
    writable: true,
    value: (...args: unknown[]) => {
      calls++;
      return original.apply(backend, args);
    },
  });
  try {
    return { result: await fn(), calls };
  } finally {
    if (own) Object.defineProperty(target, name, own);
    else delete target[name];
  }
}

interface Outcome {
  y: Float32Array;
  grads: (Float32Array | null)[];
}

/**
 * Forward and input gradients of `c` on `backend` in `dtype`, for the upstream gradient `gy`
 * (made on cpu in f32 and rounded to `dtype`). Inputs are generated on cpu and moved.
 */
async function gradients(
  c: FusedBackwardCase,
  backend: string,
  dtype: 'float32' | 'float16',
  compute: 'float32' | 'float16',
): Promise<Outcome> {
  const live = k.memory(backend).liveTensors;
  await k.useBackend('cpu');
  const cpuInputs = k.tidy(() => makeInputs(c, 'float32').map((t) => (k.isFloat(t.dtype) ? t.to(dtype).to(compute) : t)));
  await k.useBackend(backend);
  const inputs: Tensor[] = [];
  for (const t of cpuInputs) {
    inputs.push(await t.toBackend(backend));
    t.dispose();
  }
  inputs.forEach((t, i) => {
    if (k.isFloat(t.dtype) && c.inputs[i].grad !== false) t.requiresGrad_(true);
  });
  const shape = k.noGrad(() => k.tidy(() => c.fn(...inputs).shape));
  await k.useBackend('cpu');
  const gyCpu = k.tidy(() => k.randn(shape, { seed: 99 }).to(dtype).to(compute));
  const gy = await gyCpu.toBackend(backend);
  gyCpu.dispose();
  await k.useBackend(backend);
  // backward() inside the tidy that built the graph, which holds the intermediates.
  const y = k.tidy(() => {
    const out = c.fn(...inputs);
    out.backward(gy);
    return out;
  });
  const read = async (t: Tensor): Promise<Float32Array> => {
    const wide = t.to('float32');
    const data = (await wide.data()) as Float32Array;
    if (wide !== t) wide.dispose();
    return data;
  };
  const out: Outcome = { y: await read(y), grads: [] };
  for (const t of inputs) out.grads.push(t.grad ? await read(t.grad) : null);
  [y, gy, ...inputs].forEach((t) => {
    t.grad?.dispose();
    t.dispose();
  });
  // Gradients the op did not need (a frozen weight's) and every temporary were freed.
  expect(k.memory(backend).liveTensors, `tensors left on ${backend}`).toBe(live);
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let at = -1;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) - rtol * Math.abs(expected[i]);
    if (!(err <= atol) && (at === -1 || !(err <= worst))) {
      at = i;
      worst = err;
    }
  }
  expect(at, `${what}: element ${at} is ${actual[at]}, composite on cpu says ${expected[at]} (atol ${atol}, rtol ${rtol})`).toBe(-1);
}

/** Registers the fused-backward parity tests for `backend`. */
export function fusedBackwardSuite(backend: string, options: FusedBackwardOptions = {}): void {
  const kernels = options.kernels ?? FUSED_BACKWARD_KERNELS;
  for (const dtype of options.dtypes ?? ['float32']) {
    const atol = options.atol ?? (dtype === 'float16' ? 3e-2 : 2e-4);
    const rtol = options.rtol ?? (dtype === 'float16' ? 3e-2 : 2e-4);
    describe(`fused backward: ${backend} (${dtype}) vs the composite on cpu`, () => {
      beforeAll(async () => {
        await k.useBackend(backend);
      });
      afterAll(async () => {
        await k.useBackend('cpu');
      });
      for (const c of FUSED_BACKWARD_CASES.filter((fc) => kernels.includes(fc.kernel))) {
        it(`${c.kernel}: ${c.name}`, async () => {
          const cpu = await k.initBackend('cpu');
          const ref = await withoutKernels(cpu, FUSED_BACKWARD_KERNELS, () => gradients(c, 'cpu', dtype, 'float32'));
          const be = await k.initBackend(backend);
          const { result: got, calls } = await counting(be, c.kernel, () => gradients(c, backend, dtype, dtype));
          expect(calls, `${backend}.${c.kernel} was not called`).toBeGreaterThan(0);
          expectClose(got.y, ref.y, atol, rtol, 'forward');
          got.grads.forEach((g, i) => {
            if (ref.grads[i] === null) expect(g, `grad of input ${i}`).toBeNull();
            else {
              expect(g, `grad of input ${i}`).not.toBeNull();
              expectClose(g!, ref.grads[i]!, atol, rtol, `grad of input ${i}`);
            }
          });
        });
      }
    });
  }
}
