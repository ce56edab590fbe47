import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import {
  Conv2d,
  Linear,
  LoraLayer,
  Module,
  checkpoint,
  injectLora,
  loraLayers,
  loraNames,
  mergeLora,
  removeLora,
  setLoraEnabled,
  setLoraScale,
  unmergeLora,
} from '../src/index.js';
import { maxAbsDiff, secondBackend, values } from './helpers.js';

/** A small model with the path shapes LoRA targets: attention-like Linears and a 3×3 conv. */
class Block extends Module {
  readonly conv: Conv2d;
  readonly toQ: Linear;
  readonly toOut: Linear;
  constructor(dtype: k.DType = 'float32') {
    super();
    this.conv = this.registerModule('conv1', new Conv2d(3, 4, 3, { padding: 1, stride: 2, dtype }));
    this.toQ = this.registerModule('to_q', new Linear(4, 6, { bias: false, dtype }));
    this.toOut = this.registerModule('to_out', new Linear(6, 4, { dtype }));
  }
  forward(x: k.Tensor): k.Tensor {
    const h = this.conv.forward(x); // [B, 4, H, W]
    const [b, c, hh, ww] = h.shape;
    const tokens = h.reshape([b!, c!, hh! * ww!]).transpose(1, 2);
    return this.toOut.forward(k.silu(this.toQ.forward(tokens)));
  }
}

const ALL = ['conv1', 'to_q', 'to_out'];

/** Gives every lora_B random values (B starts at zero, which would hide most bugs). */
function randomiseB(model: Module, seed: number): void {
  k.noGrad(() => {
    for (const [, l] of loraLayers(model))
      l.loraB.weight.assign_(k.randn(l.loraB.weight.shape, { seed: seed++, dtype: l.loraB.weight.dtype }).mul(0.3));
  });
}

const relErr = async (a: k.Tensor, b: k.Tensor): Promise<number> => {
  const [x, y] = [await values(a), await values(b)];
  return maxAbsDiff(x, y) / Math.max(...y.map(Math.abs));
};

describe('injectLora', () => {
  it('keeps the base state-dict keys, freezes the base and starts as the identity update', async () => {
    k.manualSeed(0);
    const model = new Block();
    const keys = Object.keys(model.stateDict());
    const x = k.randn([2, 3, 6, 6], { seed: 1 });
    const before = await values(model.forward(x));
    const lora = injectLora(model, { targets: ALL, rank: 2, alpha: 4 });
    expect(Object.keys(model.stateDict())).toEqual(keys);
    expect([...lora.layers.keys()]).toEqual(['conv1', 'to_q', 'to_out']);
    expect(lora.parameters()).toHaveLength(6);
    const trainable = model.parameters().filter((p) => p.requiresGrad);
    expect(new Set(trainable)).toEqual(new Set(lora.parameters()));
    expect(model.numParameters({ trainableOnly: true })).toBe(2 * (27 + 4) + 2 * (4 + 6) + 2 * (6 + 4));
    expect(lora.layers.get('conv1')!.loraA.weight.shape).toEqual([2, 3, 3, 3]);
    expect(lora.layers.get('conv1')!.loraB.weight.shape).toEqual([4, 2, 1, 1]);
    expect(maxAbsDiff(await values(model.forward(x)), before)).toBe(0);
    // The base file still loads strictly.
    model.loadStateDict(Object.fromEntries(Object.entries(model.stateDict()).map(([n, t]) => [n, k.clone(t)])));
  });

  it('initialises lora_A kaiming-uniform (±1/√fan-in) from its generator and lora_B at zero', async () => {
    const lin = new Linear(64, 32);
    const one = injectLora(lin, { targets: [() => true], rank: 8, generator: new k.Generator(7) }).layers.get('')!;
    const a = await values(one.loraA.weight);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / 8);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.1);
    expect(await values(one.loraB.weight)).toEqual(new Array(32 * 8).fill(0));
    const again = injectLora(new Linear(64, 32), { targets: [() => true], rank: 8, generator: new k.Generator(7) }).layers.get('')!;
    expect(await values(again.loraA.weight)).toEqual(a);
  });

  it("gaussian init draws lora_A from N(0, 1/rank²) (diffusers' DreamBooth LoRA scripts)", async () => {
    const lin = new Linear(256, 64);
    const a = await values(injectLora(lin, { targets: [() => true], rank: 4, init: 'gaussian' }).layers.get('')!.loraA.weight);
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    const std = Math.sqrt(a.reduce((x, y) => x + (y - mean) ** 2, 0) / a.length);
    expect(std).toBeGreaterThan(0.25 * 0.95);
    expect(std).toBeLessThan(0.25 * 1.05);
    expect(Math.abs(mean)).toBeLessThan(0.02);
  });

  it('selects by PEFT suffix, RegExp or predicate, and refuses an empty selection or a repeated name', () => {
    const model = new Block();
    expect(() => injectLora(model, { targets: ['q'], rank: 1 })).toThrow(k.ArgumentError); // 'q' is not a suffix segment of 'to_q'
    expect([...injectLora(model, { targets: ['to_q', /^conv/], rank: 1, name: 'a' }).layers.keys()]).toEqual(['conv1', 'to_q']);
    expect([...injectLora(model, { targets: [(_p, l) => l instanceof Linear], rank: 1, name: 'b' }).layers.keys()]).toEqual([
      'to_q',
      'to_out',
    ]);
    expect(() => injectLora(model, { targets: ['to_q'], rank: 1, name: 'a' })).toThrow(/already has an adapter named 'a'/);
    expect(loraNames(model)).toEqual(['a', 'b']);
    // A LoRA's own weights are never targets, even for a match-everything predicate.
    expect(injectLora(model, { targets: [() => true], rank: 1, name: 'c' }).layers.size).toBe(3);
  });
});

describe('LoRA numerics', () => {
  it('forward equals base + scale·alpha/rank·B·A x, merged equals applied (≤ 1e-6 relative), unmerge restores', async () => {
    k.manualSeed(2);
    const model = new Block();
    const x = k.randn([2, 3, 6, 6], { seed: 3 });
    const base = model.forward(x);
    const baseWeights = await Promise.all([model.conv.weight, model.toQ.weight, model.toOut.weight].map(values));
    const lora = injectLora(model, { targets: ALL, rank: 3, alpha: 6 });
    randomiseB(model, 10);
    // Linear: the explicit composite.
    const l = lora.layers.get('to_q')!;
    const t = k.randn([5, 4], { seed: 4 });
    const want = k
      .linear(t, model.toQ.weight, null)
      .add(k.matmul(k.matmul(t, l.loraA.weight.transpose(0, 1)), l.loraB.weight.transpose(0, 1)).mul(2));
    expect(await relErr(model.toQ.forward(t), want)).toBeLessThan(1e-6);
    const applied = model.forward(x);
    expect(await relErr(applied, base)).toBeGreaterThan(1e-3);
    mergeLora(model);
    expect(loraLayers(model).every(([, m]) => m.merged)).toBe(true);
    expect(await relErr(model.forward(x), applied)).toBeLessThan(1e-6);
    unmergeLora(model);
    const restored = await Promise.all([model.conv.weight, model.toQ.weight, model.toOut.weight].map(values));
    restored.forEach((w, i) => expect(maxAbsDiff(w, baseWeights[i]!)).toBeLessThan(1e-6));
    expect(await relErr(model.forward(x), applied)).toBeLessThan(1e-6);
  });

  it('stacks adapters with scales: base + Σ sᵢ·Δᵢ, applied or merged; disable and remove', async () => {
    k.manualSeed(3);
    const model = new Block('float64');
    const x = k.randn([1, 3, 6, 6], { seed: 5, dtype: 'float64' });
    const base = model.forward(x);
    injectLora(model, { targets: ALL, rank: 2, alpha: 2, name: 'subject' });
    injectLora(model, { targets: ['to_q', 'to_out'], rank: 4, alpha: 2, name: 'style', scale: 0.5 });
    randomiseB(model, 20);
    // Reference: merge each delta by hand into a copy of the base weights.
    const ref = new Block('float64');
    ref.loadStateDict(model.stateDict());
    k.noGrad(() => {
      for (const [path, layer] of loraLayers(model)) {
        const w = (ref.getSubmodule(path) as Linear).weight;
        const a = layer.loraA.weight.reshape([layer.rank, -1]);
        const b = layer.loraB.weight.reshape([-1, layer.rank]);
        w.assign_(
          w.add(
            k
              .matmul(b, a)
              .mul((layer.alpha / layer.rank) * layer.scale)
              .reshape(w.shape),
          ),
        );
      }
    });
    expect(loraLayers(model, 'style')[0]![1].scaling).toBe(0.25);
    const applied = model.forward(x);
    expect(await relErr(applied, ref.forward(x))).toBeLessThan(1e-12);
    mergeLora(model, 'style');
    expect(await relErr(model.forward(x), ref.forward(x))).toBeLessThan(1e-12);
    expect(() => setLoraScale(model, 'style', 1)).toThrow(/unmerge/);
    unmergeLora(model, 'style');
    setLoraScale(model, 'style', 0);
    setLoraEnabled(model, false, 'subject');
    expect(await relErr(model.forward(x), base)).toBeLessThan(1e-12);
    setLoraEnabled(model, true);
    mergeLora(model, 'subject');
    removeLora(model);
    expect(loraNames(model)).toEqual([]);
    expect(await relErr(model.forward(x), base)).toBeLessThan(1e-12);
  });

  it('gradients reach only the adapters and match finite differences (Linear and strided Conv2d, float64)', async () => {
    k.manualSeed(4);
    const model = new Block('float64');
    injectLora(model, { targets: ALL, rank: 2, alpha: 3 });
    randomiseB(model, 30);
    const x = k.randn([1, 3, 5, 5], { seed: 6, dtype: 'float64' });
    const r = k.randn(model.forward(x).shape, { seed: 7, dtype: 'float64' });
    const loss = (): k.Tensor => model.forward(x).mul(r).sum();
    loss().backward();
    expect(model.conv.weight.grad).toBeNull();
    expect(model.toQ.weight.grad).toBeNull();
    for (const [path, l] of loraLayers(model)) {
      for (const p of l.adapterParameters()) {
        const analytic = await values(p.grad!);
        const flat = await values(p);
        const eps = 1e-6;
        for (const i of [0, Math.floor(flat.length / 2), flat.length - 1]) {
          const at = async (v: number): Promise<number> => {
            const next = [...flat];
            next[i] = v;
            k.noGrad(() => p.assign_(k.tensor(next, { dtype: 'float64' }).reshape(p.shape)));
            return (await values(k.noGrad(loss)))[0]!;
          };
          const fd = ((await at(flat[i]! + eps)) - (await at(flat[i]! - eps))) / (2 * eps);
          k.noGrad(() => p.assign_(k.tensor(flat, { dtype: 'float64' }).reshape(p.shape)));
          expect(Math.abs(fd - analytic[i]!), `${path} ${p.shape} [${i}]`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
        }
      }
    }
  });

  it('gradient checkpointing of a module trains its adapters', async () => {
    k.manualSeed(5);
    const model = new Block('float64');
    injectLora(model, { targets: ALL, rank: 2 });
    randomiseB(model, 40);
    const x = k.randn([1, 3, 5, 5], { seed: 8, dtype: 'float64' });
    model.forward(x).sum().backward();
    const direct = await Promise.all(
      loraLayers(model)
        .flatMap(([, l]) => l.adapterParameters())
        .map((p) => values(p.grad!)),
    );
    model.zeroGrad();
    checkpoint(model, x).sum().backward();
    const viaCheckpoint = await Promise.all(
      loraLayers(model)
        .flatMap(([, l]) => l.adapterParameters())
        .map((p) => values(p.grad!)),
    );
    viaCheckpoint.forEach((g, i) => expect(maxAbsDiff(g, direct[i]!)).toBeLessThan(1e-12));
  });

  it('dropout is seeded by the adapter generator and off in eval mode', async () => {
    const run = async (seed: number, train: boolean, dropout = 0.5): Promise<number[]> => {
      k.manualSeed(6);
      const lin = new Linear(16, 16);
      injectLora(lin, { targets: [() => true], rank: 4, dropout, generator: new k.Generator(seed) });
      randomiseB(lin, 50);
      lin.train(train);
      return values(lin.forward(k.ones([2, 16])));
    };
    expect(await run(1, true)).toEqual(await run(1, true));
    expect(maxAbsDiff(await run(1, true), await run(2, true))).toBeGreaterThan(1e-3);
    expect(await run(1, false)).toEqual(await run(1, true, 0));
    expect(maxAbsDiff(await run(1, true), await run(1, true, 0))).toBeGreaterThan(1e-3);
  });

  it('to(dtype) and toBackend carry the adapters; half-precision bases merge in float32', async () => {
    k.manualSeed(7);
    const model = new Block();
    injectLora(model, { targets: ALL, rank: 2 });
    randomiseB(model, 60);
    const x = k.randn([1, 3, 6, 6], { seed: 9 });
    const want = await values(model.forward(x));
    model.to('float64');
    expect(loraLayers(model).every(([, l]) => l.loraA.weight.dtype === 'float64' && l.loraB.weight.dtype === 'float64')).toBe(true);
    expect(maxAbsDiff(await values(model.forward(k.cast(x, 'float64'))), want)).toBeLessThan(1e-5);
    model.to('float16');
    const half = await values(model.forward(k.cast(x, 'float16')));
    mergeLora(model);
    expect(maxAbsDiff(await values(model.forward(k.cast(x, 'float16'))), half)).toBeLessThan(2e-2);
    const other = await secondBackend();
    await model.toBackend(other);
    expect(loraLayers(model).every(([, l]) => l.loraA.weight.device === other)).toBe(true);
  });

  it('refuses bad options with typed errors', () => {
    const lin = new Linear(4, 4);
    expect(() => new LoraLayer(lin, { rank: 0 })).toThrow(k.ArgumentError);
    expect(() => new LoraLayer(lin, { dropout: 1 })).toThrow(k.ArgumentError);
    expect(() => new LoraLayer(new Conv2d(4, 4, 3, { groups: 2 }), {})).toThrow(/grouped/);
    expect(() => injectLora(lin, { targets: [() => true], name: 'a.b' })).toThrow(k.ArgumentError);
  });
});
