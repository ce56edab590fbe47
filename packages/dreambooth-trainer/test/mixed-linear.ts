import * as k from '@kiln/tensor-core';
import { Linear } from '@kiln/nn';
import { GradScaler } from '../src/grad-scaler.js';
import { MixedPrecision } from '../src/mixed-precision.js';
import type { HalfDType } from '../src/mixed-precision.js';

/**
 * A Linear(3, 2) with dyadic weights under MixedPrecision, on the current backend, and its input
 * x = [1, 2, 3]: loss = Σ (W·x + b) gives ∂W = 1·xᵀ and ∂b = 1 exactly, in any precision.
 */
export function mixedLinear(o: { dtype: HalfDType; scale: number; growthInterval?: number }) {
  const lin = new Linear(3, 2);
  k.noGrad(() => {
    lin.weight.assign_(
      k.tensor([
        [0.5, -0.25, 1],
        [2, 0.125, -1],
      ]),
    );
    lin.bias!.assign_(k.tensor([0.5, -0.5]));
  });
  const amp = new MixedPrecision({
    dtype: o.dtype,
    trained: () => lin.parameters(),
    trainedModules: () => [lin],
    modules: [lin],
    scaler: o.dtype === 'float16' ? new GradScaler({ initScale: o.scale, growthInterval: o.growthInterval ?? 2000 }) : null,
  });
  return { lin, amp, x: k.tensor([[1, 2, 3]]) };
}
