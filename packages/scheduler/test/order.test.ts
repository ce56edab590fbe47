import { describe, expect, it } from 'vitest';
import { DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler } from '../src/index.js';

// diffusers' `order` is the number of model evaluations per step, which img2img multiplies its
// first timestep index by: 1 for every scheduler here (Heun's 2 is tested with it), whatever the
// multistep solvers' solver_order.
describe('order', () => {
  it('is 1 for the multistep solvers whatever solver_order is, as in diffusers', () => {
    for (const solver_order of [1, 2]) {
      expect(DPMSolverMultistepScheduler.fromConfig({ solver_order }).order).toBe(1);
      expect(UniPCMultistepScheduler.fromConfig({ solver_order }).order).toBe(1);
    }
    expect(DDIMScheduler.fromConfig({}).order).toBe(1);
    expect(EulerDiscreteScheduler.fromConfig({}).order).toBe(1);
  });
});
