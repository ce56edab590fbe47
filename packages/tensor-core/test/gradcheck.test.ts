import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { OP_CASES, makeInputs } from './op-cases.js';

beforeAll(async () => {
  await k.useBackend('cpu');
});

describe('finite-difference gradients (float64, cpu)', () => {
  for (const c of OP_CASES.filter((c) => !c.noGrad)) {
    it(c.name, async () => {
      const inputs = makeInputs(c, 'float64');
      const r = await k.gradcheck(c.fn, inputs, { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
      expect(r.ok, JSON.stringify(r.worst)).toBe(true);
      inputs.forEach((t) => t.dispose());
    });
  }

  it('catches a wrong gradient rule (the check can fail)', async () => {
    const x = k.randn([3], { dtype: 'float64', seed: 3 });
    // exp with a deliberately wrong backward: d/dx = 2·exp(x).
    const wrongExp = (t: k.Tensor) => {
      const y = k.noGrad(() => t.exp());
      return k.recordGrad(y, 'wrongExp', [t], (g) => [g.mul(y).mul(2)]);
    };
    const r = await k.gradcheck(wrongExp, [x]);
    expect(r.ok).toBe(false);
  });
});
