/**
 * The op layer's hookup of the fused backward kernels, on the cpu backend: its reference kernels
 * against the composite (the suite the wasm and webgpu backends also run), the composite itself
 * by finite differences with the kernels hidden, and the cases that must keep the composite.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { FUSED_BACKWARD_CASES, FUSED_BACKWARD_KERNELS, fusedBackwardSuite, withoutKernels } from './fused-backward.js';
import { makeInputs } from './op-cases.js';

fusedBackwardSuite('cpu', { dtypes: ['float32', 'float16'] });

describe('fused backward hookup (cpu)', () => {
  beforeAll(async () => {
    await k.useBackend('cpu');
  });

  describe('the composite gradient, with the fused kernels hidden, by finite differences (float64)', () => {
    for (const c of FUSED_BACKWARD_CASES.filter((fc) => fc.inputs.every((s) => s.shape.reduce((a, b) => a * b, 1) <= 4096))) {
      it(c.name, async () => {
        const cpu = await k.initBackend('cpu');
        const inputs = makeInputs(c, 'float64');
        const r = await withoutKernels(cpu, FUSED_BACKWARD_KERNELS, () => k.gradcheck(c.fn, inputs, { eps: 1e-6, atol: 1e-6, rtol: 1e-4 }));
        expect(r.ok, JSON.stringify(r.worst)).toBe(true);
        inputs.forEach((t) => t.dispose());
      });
    }
  });

  it('a mask that requires grad takes the composite and gets its gradient', async () => {
    const cpu = await k.initBackend('cpu');
    const run = async () => {
      const [q, key, v, m] = [
        [2, 3, 4],
        [2, 5, 4],
        [2, 5, 2],
        [3, 5],
      ].map((s, i) => k.randn(s, { seed: i + 1 }).requiresGrad_());
      k.tidy(() => k.scaledDotProductAttention(q, key, v, { attnMask: m }).square().sum().backward());
      return Promise.all([q, key, v, m].map((t) => t.grad!.data()));
    };
    const original = cpu.attentionBackward!;
    let calls = 0;
    cpu.attentionBackward = (...args) => {
      calls++;
      return original.apply(cpu, args);
    };
    try {
      const got = await run();
      expect(calls).toBe(0);
      const want = await withoutKernels(cpu, FUSED_BACKWARD_KERNELS, run);
      got.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(want[i])));
    } finally {
      delete (cpu as Partial<k.Backend>).attentionBackward;
    }
    expect(typeof cpu.attentionBackward).toBe('function');
  });

  it('the fused gradients leave no tensors behind (unused weight/bias gradients are freed)', async () => {
    const x = k.randn([2, 4, 3, 3], { seed: 1 }).requiresGrad_();
    const w = k.randn([4], { seed: 2 });
    const b = k.randn([4], { seed: 3 });
    const before = k.memory().liveTensors;
    k.tidy(() => k.groupNormSilu(x, 2, w, b).sum().backward());
    expect(k.memory().liveTensors).toBe(before + 1); // x.grad
    expect(x.grad!.shape).toEqual([2, 4, 3, 3]);
  });
});
