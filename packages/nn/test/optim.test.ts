import * as k from '@kiln/tensor-core';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AdamW, Linear, OptimizerError, SGD, Sequential, SiLU, clipGradNorm } from '../src/index.js';
import type { Optimizer, BaseHyper } from '../src/index.js';
import { maxAbsDiff, values } from './helpers.js';

type Traj = Record<'w' | 'b', number[]>[];
interface Ref {
  steps: number;
  shapes: Record<'w' | 'b', number[]>;
  init: Record<'w' | 'b', number[]>;
  a: Record<'w' | 'b', number[]>;
  t: Record<'w' | 'b', number[]>;
  adamw: {
    name: string;
    groups: { params: ('w' | 'b')[]; lr?: number; weight_decay?: number }[] | null;
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    float64: Traj;
    float32: Traj;
  }[];
  sgd: {
    name: string;
    lr: number;
    momentum: number;
    dampening: number;
    weight_decay: number;
    nesterov: boolean;
    float64: Traj;
    float32: Traj;
  }[];
}

const ref = JSON.parse(readFileSync(new URL('./fixtures/optim_reference.json', import.meta.url), 'utf8')) as Ref;
const NAMES = ['w', 'b'] as const;

/** Replays the reference problem in Kiln: the same loss, autograd gradients, `steps` optimizer steps. */
async function replay(dtype: 'float32' | 'float64', makeOpt: (p: Record<'w' | 'b', k.Tensor>) => Optimizer<BaseHyper>): Promise<Traj> {
  const p = {
    w: k.keep(k.tensor(ref.init.w, { shape: ref.shapes.w, dtype, requiresGrad: true })),
    b: k.keep(k.tensor(ref.init.b, { shape: ref.shapes.b, dtype, requiresGrad: true })),
  };
  const a = { w: k.tensor(ref.a.w, { shape: ref.shapes.w, dtype }), b: k.tensor(ref.a.b, { shape: ref.shapes.b, dtype }) };
  const t = { w: k.tensor(ref.t.w, { shape: ref.shapes.w, dtype }), b: k.tensor(ref.t.b, { shape: ref.shapes.b, dtype }) };
  const opt = makeOpt(p);
  const traj: Traj = [];
  for (let s = 0; s < ref.steps; s++) {
    opt.zeroGrad();
    k.tidy(() => {
      const terms = NAMES.map((n) => a[n].mul(p[n].sub(t[n]).square()).mul(0.5).add(p[n].pow(3).mul(0.1)).sum());
      terms[0].add(terms[1]).backward();
    });
    opt.step();
    traj.push({ w: await values(p.w), b: await values(p.b) });
  }
  return traj;
}

function worst(a: Traj, b: Traj): number {
  let m = 0;
  a.forEach((step, i) => NAMES.forEach((n) => (m = Math.max(m, maxAbsDiff(step[n], b[i][n])))));
  return m;
}

describe('AdamW against torch.optim.AdamW', () => {
  for (const c of ref.adamw) {
    const make = (p: Record<'w' | 'b', k.Tensor>) =>
      new AdamW(
        c.groups ? c.groups.map((g) => ({ params: g.params.map((n) => p[n]), lr: g.lr, weightDecay: g.weight_decay })) : [p.w, p.b],
        { lr: c.lr, betas: c.betas, eps: c.eps, weightDecay: c.weight_decay },
      );
    it(`${c.name}: float64 trajectory within 1e-6 (20 steps)`, async () => {
      const err = worst(await replay('float64', make), c.float64);
      expect(err).toBeLessThanOrEqual(1e-6);
      expect(err).toBeLessThan(1e-12); // in fact the same arithmetic
    });
    it(`${c.name}: float32 trajectory within float32 tolerance`, async () => {
      expect(worst(await replay('float32', make), c.float32)).toBeLessThan(2e-6);
      expect(worst(await replay('float32', make), c.float64)).toBeLessThan(5e-6);
    });
  }

  it("uses PyTorch's defaults", () => {
    const opt = new AdamW([k.zeros([1], { requiresGrad: true })]);
    expect(opt.defaults).toEqual({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 });
    expect(() => new AdamW([k.zeros([1], { requiresGrad: true })], { betas: [1, 0.9] })).toThrow(OptimizerError);
    expect(() => new AdamW([])).toThrow(OptimizerError);
  });
});

describe('SGD against torch.optim.SGD', () => {
  for (const c of ref.sgd) {
    const make = (p: Record<'w' | 'b', k.Tensor>) =>
      new SGD([p.w, p.b], { lr: c.lr, momentum: c.momentum, dampening: c.dampening, weightDecay: c.weight_decay, nesterov: c.nesterov });
    it(`${c.name}: float64 within 1e-6, float32 within 1e-5`, async () => {
      expect(worst(await replay('float64', make), c.float64)).toBeLessThanOrEqual(1e-6);
      expect(worst(await replay('float32', make), c.float32)).toBeLessThan(1e-5);
    });
  }
  it('refuses Nesterov without momentum', () => {
    expect(() => new SGD([k.zeros([1], { requiresGrad: true })], { nesterov: true })).toThrow(/Nesterov/);
  });
});

describe('optimizer state save/restore', () => {
  async function train(steps: number, resumeAt?: number): Promise<number[][]> {
    k.manualSeed(11);
    const make = () => new Sequential([new Linear(4, 8), new SiLU(), new Linear(8, 1)]);
    const model = make();
    let opt = new AdamW([{ params: model.at(0).parameters(), lr: 3e-2 }, { params: model.at(2).parameters() }], {
      lr: 1e-2,
      weightDecay: 0.05,
    });
    const x = k.randn([16, 4], { seed: 5 });
    const y = k.randn([16, 1], { seed: 6 });
    for (let s = 0; s < steps; s++) {
      if (s === resumeAt) {
        const saved = opt.stateDict();
        opt.dispose();
        opt = new AdamW([{ params: model.at(0).parameters() }, { params: model.at(2).parameters() }]);
        opt.loadStateDict(saved);
        for (const st of Object.values(saved.state)) for (const v of Object.values(st)) if (v instanceof k.Tensor) v.dispose();
      }
      k.tidy(() => k.mseLoss(model.forward(x), y).backward());
      opt.step();
      opt.zeroGrad();
    }
    return Promise.all(model.parameters().map(values));
  }

  it('continues bit-identically after restoring into a fresh optimizer mid-training', async () => {
    const straight = await train(8);
    const resumed = await train(8, 4);
    expect(resumed).toEqual(straight);
  });

  it('saves step counts, moments and hyperparameters as a snapshot', async () => {
    const p = k.keep(k.ones([3], { requiresGrad: true }));
    const opt = new AdamW([p], { lr: 0.1 });
    p.grad = k.keep(k.ones([3]));
    opt.step();
    const saved = opt.stateDict();
    expect(saved.paramGroups).toEqual([{ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, params: [0] }]);
    expect(saved.state[0].step).toBe(1);
    const m = saved.state[0].expAvg as k.Tensor;
    expect(await values(m)).toEqual([0.1, 0.1, 0.1].map((v) => Math.fround(v)));
    opt.step(); // the snapshot does not follow
    expect(await values(m)).toEqual([0.1, 0.1, 0.1].map((v) => Math.fround(v)));
    const other = new AdamW([k.zeros([4], { requiresGrad: true })]);
    expect(() => other.loadStateDict(saved)).toThrow(/shape/);
  });
});

describe('clipGradNorm', () => {
  it("scales gradients like torch's clip_grad_norm_ and returns the pre-clip norm as a 0-d tensor", async () => {
    const a = k.keep(k.zeros([2], { requiresGrad: true }));
    const b = k.keep(k.zeros([2, 2], { requiresGrad: true }));
    a.grad = k.keep(k.tensor([3, 4]));
    b.grad = k.keep(
      k.tensor([
        [0, 12],
        [0, 0],
      ]),
    );
    const norm = clipGradNorm([a, b], 6.5);
    expect(norm.shape).toEqual([]);
    expect(await norm.item()).toBeCloseTo(13, 5);
    const coef = 6.5 / (13 + 1e-6);
    expect(maxAbsDiff(await values(a.grad!), [3 * coef, 4 * coef])).toBeLessThan(1e-6);
    expect(maxAbsDiff(await values(b.grad!), [0, 12 * coef, 0, 0])).toBeLessThan(1e-6);
    // Below the threshold nothing changes (clip_coef clamped to 1).
    const norm2 = clipGradNorm([a, b], 100);
    expect(await norm2.item()).toBeCloseTo(6.5, 4);
    expect(maxAbsDiff(await values(a.grad!), [3 * coef, 4 * coef])).toBeLessThan(1e-6);
    const inf = clipGradNorm([a, b], 1, Infinity);
    expect(await inf.item()).toBeCloseTo(12 * coef, 4);
  });
});

describe('memory', () => {
  it('keeps live tensors and bytes flat across AdamW training steps in tidy', async () => {
    k.manualSeed(21);
    const model = new Sequential([new Linear(8, 16), new SiLU(), new Linear(16, 4)]);
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const x = k.randn([32, 8], { seed: 1 });
    const y = k.randn([32, 4], { seed: 2 });
    const snapshots: { liveTensors: number; liveBytes: number }[] = [];
    for (let s = 0; s < 5; s++) {
      k.tidy(() => {
        opt.zeroGrad();
        k.mseLoss(model.forward(x), y).backward();
        const norm = clipGradNorm(model.parameters(), 1);
        opt.step();
        norm.dispose();
      });
      const m = k.memory();
      snapshots.push({ liveTensors: m.liveTensors, liveBytes: m.liveBytes });
    }
    // Step 1 creates the optimizer state; from then on nothing grows.
    for (const s of snapshots.slice(1)) expect(s).toEqual(snapshots[1]);
  });
});
