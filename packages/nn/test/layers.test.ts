import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import {
  Conv2d,
  Dropout,
  Embedding,
  GELU,
  GroupNorm,
  Identity,
  LayerNorm,
  Linear,
  QuickGELU,
  Sequential,
  SiLU,
  kaimingUniform,
} from '../src/index.js';
import { maxAbsDiff, values } from './helpers.js';

function stats(v: number[]): { min: number; max: number; mean: number; variance: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
  return { min: Math.min(...v), max: Math.max(...v), mean, variance };
}

describe("PyTorch's default initialisation", () => {
  it('Linear: weight and bias uniform in ±1/√in (kaiming_uniform with a = √5)', async () => {
    k.manualSeed(0);
    const lin = new Linear(256, 64);
    const b = 1 / 16;
    const w = stats(await values(lin.weight));
    expect(w.min).toBeGreaterThanOrEqual(-b);
    expect(w.max).toBeLessThan(b);
    expect(w.variance).toBeCloseTo((b * b) / 3, 4); // variance of U(-b, b)
    expect(Math.abs(w.mean)).toBeLessThan(0.002);
    const bias = stats(await values(lin.bias!));
    expect(bias.min).toBeGreaterThanOrEqual(-b);
    expect(bias.max).toBeLessThan(b);
    expect(lin.weight.shape).toEqual([64, 256]);
  });

  it('Conv2d: fan-in counts in/groups × kernel area', async () => {
    k.manualSeed(1);
    const conv = new Conv2d(8, 16, 3, { groups: 2 });
    expect(conv.weight.shape).toEqual([16, 4, 3, 3]);
    const b = 1 / 6;
    const w = stats(await values(conv.weight));
    expect(w.min).toBeGreaterThanOrEqual(-b);
    expect(w.max).toBeLessThan(b);
    expect(w.variance).toBeCloseTo((b * b) / 3, 3);
    expect(Math.max(...(await values(conv.bias!)).map(Math.abs))).toBeLessThan(b);
  });

  it('kaimingUniform with a = 0 gives bound √(6 / fanIn)', async () => {
    k.manualSeed(2);
    const w = stats(await values(kaimingUniform([100, 600], 0)));
    expect(w.max).toBeLessThan(0.1);
    expect(w.max).toBeGreaterThan(0.099);
  });

  it('norms start at weight 1 / bias 0, Embedding at N(0, 1)', async () => {
    expect(await values(new GroupNorm(2, 4).weight!)).toEqual([1, 1, 1, 1]);
    expect(await values(new LayerNorm(3).bias!)).toEqual([0, 0, 0]);
    expect(new LayerNorm(3, { bias: false }).bias).toBeNull();
    expect(new GroupNorm(2, 4, { affine: false }).stateDict()).toEqual({});
    k.manualSeed(3);
    const e = stats(await values(new Embedding(200, 50).weight));
    expect(Math.abs(e.mean)).toBeLessThan(0.02);
    expect(e.variance).toBeCloseTo(1, 1);
  });

  it('is reproducible under k.manualSeed', async () => {
    k.manualSeed(7);
    const a = await values(new Linear(5, 5).weight);
    k.manualSeed(7);
    const b = await values(new Linear(5, 5).weight);
    expect(a).toEqual(b);
  });
});

describe('layer forward passes', () => {
  it('Linear computes x Wᵀ + b', async () => {
    const lin = new Linear(3, 2);
    lin.loadStateDict({
      weight: k.tensor([
        [1, 2, 3],
        [0, -1, 1],
      ]),
      bias: k.tensor([0.5, -0.5]),
    });
    expect(
      await values(
        lin.forward(
          k.tensor([
            [1, 1, 1],
            [2, 0, 1],
          ]),
        ),
      ),
    ).toEqual([6.5, -0.5, 5.5, 0.5]);
    expect(new Linear(3, 2, { bias: false }).forward(k.ones([4, 5, 3])).shape).toEqual([4, 5, 2]);
  });

  it('Conv2d honours stride, padding, dilation and groups', async () => {
    const conv = new Conv2d(2, 2, 3, { stride: 2, padding: 2, dilation: 2, groups: 2 });
    const x = k.randn([1, 2, 7, 7], { seed: 1 });
    const want = k.conv2d(x, conv.weight, conv.bias, { stride: 2, padding: 2, dilation: 2, groups: 2 });
    const got = conv.forward(x);
    expect(got.shape).toEqual([1, 2, 4, 4]);
    expect(maxAbsDiff(await values(got), await values(want))).toBe(0);
    expect(() => new Conv2d(3, 4, 3, { groups: 2 })).toThrow(/divisible/);
  });

  it('GroupNorm and LayerNorm normalise (mean 0, var 1 at init)', async () => {
    const x = k.randn([2, 4, 3, 3], { seed: 2 }).mul(3).add(1);
    const y = await values(new GroupNorm(2, 4).forward(x));
    const g0 = stats(y.slice(0, 18));
    expect(Math.abs(g0.mean)).toBeLessThan(1e-5);
    expect(g0.variance).toBeCloseTo(1, 3);
    const z = await values(new LayerNorm([3, 3]).forward(x));
    const r = stats(z.slice(9, 18));
    expect(Math.abs(r.mean)).toBeLessThan(1e-5);
    expect(r.variance).toBeCloseTo(1, 3);
  });

  it('Embedding picks rows', async () => {
    const e = new Embedding(4, 2);
    e.loadStateDict({
      weight: k.tensor([
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
      ]),
    });
    expect(await values(e.forward(k.tensor([[3, 0]], { dtype: 'int32' })))).toEqual([6, 7, 0, 1]);
  });

  it('Dropout drops about p of the elements in training mode and is the identity in eval mode', async () => {
    k.manualSeed(5);
    const d = new Dropout(0.25);
    const y = await values(d.forward(k.ones([4000])));
    const zeros = y.filter((v) => v === 0).length / y.length;
    expect(zeros).toBeGreaterThan(0.22);
    expect(zeros).toBeLessThan(0.28);
    expect(y.filter((v) => v !== 0).every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
    const x = k.ones([3]);
    expect(d.eval().forward(x)).toBe(x);
  });

  it('activations match their formulas', async () => {
    const xs = [-2, -0.5, 0, 0.7, 3];
    const x = k.tensor(xs, { dtype: 'float64' });
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    expect(
      maxAbsDiff(
        await values(new SiLU().forward(x)),
        xs.map((v) => v * sig(v)),
      ),
    ).toBeLessThan(1e-12);
    expect(
      maxAbsDiff(
        await values(new QuickGELU().forward(x)),
        xs.map((v) => v * sig(1.702 * v)),
      ),
    ).toBeLessThan(1e-12);
    const tanhGelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    expect(maxAbsDiff(await values(new GELU({ approximate: 'tanh' }).forward(x)), xs.map(tanhGelu))).toBeLessThan(1e-12);
    // Exact GELU at known points: Φ(1) = 0.8413447460685429.
    expect((await values(new GELU().forward(k.tensor([1], { dtype: 'float64' }))))[0]).toBeCloseTo(0.8413447460685429, 7);
    expect(new Identity().forward(x)).toBe(x);
  });
});

describe('gradients through layers (finite differences, float64)', () => {
  it('Sequential of Linear/GELU/LayerNorm', async () => {
    k.manualSeed(9);
    const net = new Sequential([
      new Linear(3, 4, { dtype: 'float64' }),
      new GELU(),
      new LayerNorm(4, { dtype: 'float64' }),
      new Linear(4, 2, { dtype: 'float64' }),
    ]);
    const r = await k.gradcheck((x) => net.forward(x), [k.randn([2, 3], { seed: 1, dtype: 'float64' })]);
    expect(r.ok).toBe(true);
  });

  it('Conv2d and GroupNorm, with respect to the input and the weight', async () => {
    k.manualSeed(10);
    const conv = new Conv2d(2, 4, 3, { padding: 1, stride: 2, dtype: 'float64' });
    const norm = new GroupNorm(2, 4, { dtype: 'float64' });
    const x = k.randn([1, 2, 5, 5], { seed: 2, dtype: 'float64' });
    expect((await k.gradcheck((x) => norm.forward(conv.forward(x)), [x])).ok).toBe(true);
    const w = conv.weight.detach();
    expect((await k.gradcheck((w) => norm.forward(k.conv2d(x, w, conv.bias, { padding: 1, stride: 2 })), [w])).ok).toBe(true);
  });
});
