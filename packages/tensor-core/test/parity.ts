/**
 * The op-parity suite: every case of `op-cases.ts`, forward and gradients, on a backend, against
 * the cpu backend. A backend's test file calls `paritySuite('name')`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import { halfReductionSuite } from './half-reductions.js';
import { OP_CASES, makeInputs } from './op-cases.js';
import type { OpCase } from './op-cases.js';

export interface ParityOptions {
  dtype?: 'float32' | 'float16';
  atol?: number;
  rtol?: number;
}

interface Outcome {
  y: Float32Array | Float64Array | Int32Array | Uint8Array;
  shape: readonly number[];
  grads: (Float32Array | Float64Array | Int32Array | Uint8Array | null)[];
}

async function run(c: OpCase, backend: string, dtype: 'float32' | 'float16'): Promise<Outcome> {
  await k.useBackend('cpu');
  const cpuInputs = makeInputs(c, 'float32');
  await k.useBackend(backend);
  const inputs: Tensor[] = [];
  for (const t of cpuInputs) {
    const moved = await t.toBackend(backend);
    inputs.push(k.isFloat(moved.dtype) && dtype !== 'float32' ? moved.to(dtype) : moved);
    t.dispose();
  }
  const tracked = inputs.map((t) => (k.isFloat(t.dtype) && !c.noGrad ? t.requiresGrad_(true) : t));
  const { y, grads } = k.tidy(() => {
    const y = c.fn(...tracked);
    if (!c.noGrad && y.requiresGrad) {
      const w = k.randn(y.shape, { seed: 99, dtype: y.dtype });
      y.mul(w).sum().backward();
    }
    return { y: k.isFloat(y.dtype) ? y.to('float32') : y, grads: tracked.map((t) => t.grad) };
  });
  const out: Outcome = { y: await y.data(), shape: y.shape, grads: [] };
  for (const g of grads) out.grads.push(g ? await g.to('float32').data() : null);
  y.dispose();
  tracked.forEach((t) => {
    t.grad?.dispose();
    t.dispose();
  });
  return out;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    const err = Math.abs(a - e) - rtol * Math.abs(e);
    if (!(err <= atol) && !(Number.isNaN(a) && Number.isNaN(e)) && !(a === e)) {
      if (!(err <= worst) || at === -1) {
        worst = err;
        at = i;
      }
    }
  }
  expect(at, `${what}: element ${at} is ${actual[at]}, cpu says ${expected[at]} (atol ${atol}, rtol ${rtol})`).toBe(-1);
}

/** Registers the parity tests for `backend` (which must be initialisable here). */
export function paritySuite(backend: string, options: ParityOptions = {}): void {
  const dtype = options.dtype ?? 'float32';
  const atol = options.atol ?? (dtype === 'float16' ? 3e-2 : 1e-4);
  const rtol = options.rtol ?? (dtype === 'float16' ? 3e-2 : 1e-4);
  describe(`op parity: ${backend} (${dtype}) vs cpu`, () => {
    beforeAll(async () => {
      await k.useBackend(backend);
    });
    afterAll(async () => {
      await k.useBackend('cpu');
    });
    it('Generator: the same stream of draws as on cpu, and the same state after', async () => {
      const draws = async (device: string) => {
        const g = new k.Generator(31337);
        const out: Outcome['y'][] = [];
        for (const n of [6, 1025, 2]) {
          for (const t of [k.randn([n], { generator: g, device, dtype }), k.rand([n], { generator: g, device, dtype })]) {
            out.push(await t.to('float32').data());
            t.dispose();
          }
          const ids = k.randint(0, 1000, [n], { generator: g, device });
          out.push(await ids.data());
          ids.dispose();
        }
        return { out, state: g.getState() };
      };
      const ref = await draws('cpu');
      const got = await draws(backend);
      expect(got.state).toEqual(ref.state);
      got.out.forEach((y, i) => close(y, ref.out[i], atol, rtol, `draw ${i}`));
    });
    for (const c of OP_CASES) {
      it(c.name, async () => {
        const ref = await run(c, 'cpu', dtype);
        const got = await run(c, backend, dtype);
        expect(got.shape).toEqual(ref.shape);
        const tol = c.tol ?? 1;
        close(got.y, ref.y, atol * tol, rtol * tol, 'forward');
        got.grads.forEach((g, i) => {
          if (ref.grads[i] === null) expect(g).toBeNull();
          else close(g!, ref.grads[i]!, atol * tol, rtol * tol, `grad of input ${i}`);
        });
      });
    }
  });
  // Absolute checks that a backend-vs-cpu comparison cannot make: half-precision reductions.
  if (dtype === 'float32') halfReductionSuite(backend);
}
