import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { AdamW, LambdaLR, OptimizerError, getScheduler } from '../src/index.js';
import type { SchedulerName } from '../src/index.js';

const opt = (lr = 0.1) => new AdamW([k.zeros([1], { requiresGrad: true })], { lr });

/** The lr after each of `n` scheduler steps, starting with the value set at construction (step 0). */
function lrs(name: SchedulerName, options: Omit<Parameters<typeof getScheduler>[1], 'optimizer'>, n: number, lr = 0.1): number[] {
  const o = opt(lr);
  const s = getScheduler(name, { optimizer: o, ...options });
  const out = [o.paramGroups[0].lr];
  for (let i = 0; i < n; i++) {
    s.step();
    out.push(s.getLastLr()[0]);
  }
  return out;
}

// Expected values are diffusers' formulas evaluated by hand for these small cases.
describe("getScheduler (diffusers' formulas)", () => {
  it('constant and constant_with_warmup', () => {
    expect(lrs('constant', {}, 3)).toEqual([0.1, 0.1, 0.1, 0.1]);
    const want = [0, 0.025, 0.05, 0.075, 0.1, 0.1];
    lrs('constant_with_warmup', { numWarmupSteps: 4 }, 5).forEach((v, i) => expect(v).toBeCloseTo(want[i], 15));
  });

  it('linear: warmup then linear decay to 0 at numTrainingSteps, clamped at 0', () => {
    const got = lrs('linear', { numWarmupSteps: 2, numTrainingSteps: 6 }, 7);
    const want = [0, 0.05, 0.1, 0.075, 0.05, 0.025, 0, 0];
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 15));
  });

  it('cosine: half a cosine after warmup (numCycles is ignored, as in diffusers)', () => {
    const got = lrs('cosine', { numWarmupSteps: 1, numTrainingSteps: 5, numCycles: 3 }, 5);
    const want = [0, 1, 0.5 * (1 + Math.cos(Math.PI * 0.25)), 0.5, 0.5 * (1 + Math.cos(Math.PI * 0.75)), 0].map((f) => 0.1 * f);
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 15));
  });

  it('cosine_with_restarts: hard restarts, 0 from numTrainingSteps on', () => {
    const got = lrs('cosine_with_restarts', { numWarmupSteps: 0, numTrainingSteps: 8, numCycles: 2 }, 9);
    const f = (p: number) => (p >= 1 ? 0 : 0.5 * (1 + Math.cos(Math.PI * ((2 * p) % 1))));
    const want = Array.from({ length: 10 }, (_, s) => 0.1 * f(s / 8));
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 15));
    expect(got[4]).toBeCloseTo(0.1, 15); // the restart
  });

  it('polynomial: decays from the default lr to lrEnd with the given power', () => {
    const got = lrs('polynomial', { numWarmupSteps: 2, numTrainingSteps: 6, power: 2 }, 8);
    const lrEnd = 1e-7;
    const dec = (s: number) => (0.1 - lrEnd) * (1 - (s - 2) / 4) ** 2 + lrEnd;
    const want = [0, 0.05, dec(2), dec(3), dec(4), dec(5), dec(6), lrEnd, lrEnd];
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 15));
    expect(() => getScheduler('polynomial', { optimizer: opt(1e-8), numWarmupSteps: 0, numTrainingSteps: 5 })).toThrow(/lr_end/);
  });

  it('piecewise_constant follows step rules', () => {
    expect(lrs('piecewise_constant', { stepRules: '1:2,0.5:4,0.1' }, 5, 1)).toEqual([1, 1, 0.5, 0.5, 0.1, 0.1]);
  });

  it('requires the arguments diffusers requires', () => {
    expect(() => getScheduler('linear', { optimizer: opt() })).toThrow(OptimizerError);
    expect(() => getScheduler('cosine', { optimizer: opt(), numWarmupSteps: 1 })).toThrow(/numTrainingSteps/);
  });

  it('scales every param group from its own initial lr and resumes from a saved state', () => {
    const p = [k.zeros([1], { requiresGrad: true }), k.zeros([1], { requiresGrad: true })];
    const o = new AdamW([
      { params: [p[0]], lr: 1 },
      { params: [p[1]], lr: 0.5 },
    ]);
    const s = getScheduler('linear', { optimizer: o, numWarmupSteps: 0, numTrainingSteps: 4 });
    s.step();
    expect(s.getLastLr()).toEqual([0.75, 0.375]);
    const saved = s.stateDict();
    const o2 = new AdamW([
      { params: [p[0]], lr: 123 },
      { params: [p[1]], lr: 0.5 },
    ]);
    const s2 = new LambdaLR(o2, (step) => Math.max(0, (4 - step) / 4));
    s2.loadStateDict(saved);
    expect(s2.getLastLr()).toEqual([0.75, 0.375]);
    s2.step();
    expect(o2.paramGroups.map((g) => g.lr)).toEqual([0.5, 0.25]);
  });
});
