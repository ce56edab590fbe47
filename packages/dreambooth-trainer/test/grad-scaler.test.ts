/**
 * Loss scaling and float32 masters against hand-computed values: torch.cuda.amp.GradScaler's
 * schedule (backoff on overflow, growth after N good steps), and MixedPrecision's step on a
 * Linear whose gradients are known in closed form (loss = Σ W·x + b ⇒ ∂W = 1·xᵀ, ∂b = 1).
 */
import * as k from '@kiln/tensor-core';
import { SGD } from '@kiln/nn';
import { beforeAll, describe, expect, it } from 'vitest';
import { GradScaler, GradScalerStateSchema } from '../src/grad-scaler.js';
import { halfDTypeOf } from '../src/mixed-precision.js';
import { mixedLinear } from './mixed-linear.js';

beforeAll(async () => {
  await k.useBackend('cpu');
});

describe('GradScaler', () => {
  it("has torch's defaults: 2^16, growth 2 every 2000 good steps, backoff 0.5", () => {
    const s = new GradScaler();
    expect(s.stateDict()).toEqual({ scale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, growthTracker: 0 });
    for (let i = 0; i < 1999; i++) s.update(false);
    expect(s.scale).toBe(65536);
    s.update(false);
    expect(s.stateDict()).toMatchObject({ scale: 131072, growthTracker: 0 });
  });

  it('halves on overflow and restarts the growth count; grows after growthInterval good steps in a row', () => {
    const s = new GradScaler({ initScale: 1024, growthInterval: 3 });
    const trace: [number, number][] = [];
    for (const inf of [false, false, true, false, false, false, false, true, true]) {
      s.update(inf);
      trace.push([s.scale, s.growthTracker]);
    }
    // Worked by hand: 2 good (tracker 2), overflow → 512, 3 good → 1024, 1 good, 2 overflows → 512, 256.
    expect(trace).toEqual([
      [1024, 1],
      [1024, 2],
      [512, 0],
      [512, 1],
      [512, 2],
      [1024, 0],
      [1024, 1],
      [512, 0],
      [256, 0],
    ]);
  });

  it('keeps its scale where growing would overflow float32, and round-trips its state', () => {
    const s = new GradScaler({ initScale: 2 ** 127, growthInterval: 1 });
    s.update(false);
    expect(s.scale).toBe(2 ** 127);
    const t = GradScaler.fromState(GradScalerStateSchema.parse({ ...new GradScaler({ growthInterval: 5 }).stateDict(), growthTracker: 4 }));
    t.update(false);
    expect(t.scale).toBe(2 ** 17);
  });
});

describe('MixedPrecision', () => {
  const setup = (o: { scale: number; growthInterval?: number; dtype?: 'float16' | 'bfloat16' }) => {
    const dtype = o.dtype ?? 'float16';
    const { lin, amp, x } = mixedLinear({ ...o, dtype });
    const opt = new SGD(amp.masters, { lr: 0.5 });
    /** One micro-batch: forward in half precision, float32 loss, backward, gradients into the masters. */
    const micro = (scaleLoss = (l: k.Tensor) => amp.scaleLoss(l)) => {
      k.tidy(() => scaleLoss(lin.forward(x.to(dtype)).to('float32').sum()).backward());
      amp.collectGrads();
    };
    return { lin, amp, opt, micro };
  };
  const values = async (ts: k.Tensor[]) => Promise.all(ts.map(async (t) => Array.from((await t.to('float32').data()) as Float32Array)));

  it('computes in half precision, steps float32 masters with unscaled gradients, and re-casts them', async () => {
    const { lin, amp, opt, micro } = setup({ scale: 2 ** 10 });
    expect(lin.weight.dtype).toBe('float16');
    expect(amp.masters.map((m) => m.dtype)).toEqual(['float32', 'float32']);
    micro();
    expect(await values([amp.masters[0].grad!])).toEqual([[1024, 2048, 3072, 1024, 2048, 3072]]); // scaled, in float32
    expect(lin.weight.grad).toBeNull();
    expect(await amp.step(opt, 1e9)).toBe(true);
    opt.zeroGrad();
    // W − 0.5·xᵀ and b − 0.5, exactly (every value is a dyadic fraction).
    const want = [
      [0, -1.25, -0.5, 1.5, -0.875, -2.5],
      [0, -1],
    ];
    expect(await values(amp.masters)).toEqual(want);
    expect(await values(lin.parameters())).toEqual(want);
    expect(lin.weight.dtype).toBe('float16');
  });

  it('sums micro-batch gradients in float32, and unscales before clipping', async () => {
    const { amp, opt, micro } = setup({ scale: 2 ** 4 });
    micro();
    micro();
    // ‖g‖ after unscaling = 2·√(2·(1+4+9) + 2) = 2·√30; clipped to 1.
    const norm = 2 * Math.sqrt(30);
    expect(await amp.step(opt, 1)).toBe(true);
    const [w] = await values(amp.masters);
    const coef = 1 / (norm + 1e-6);
    const want = [0.5, -0.25, 1, 2, 0.125, -1].map((v, i) => v - 0.5 * 2 * [1, 2, 3][i % 3] * coef);
    w.forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
  });

  it('skips a step whose float16 gradients overflow: masters unchanged, scale halved, then grows after good steps', async () => {
    const { lin, amp, opt, micro } = setup({ scale: 2 ** 8, growthInterval: 2 });
    const before = await values(amp.masters);
    // A loss × 2^40 makes float16 gradients inf in the backward pass through the half-precision layer.
    micro((l) => l.mul(2 ** 40));
    expect(await amp.step(opt, 1)).toBe(false);
    opt.zeroGrad();
    expect(amp.scaler!.scale).toBe(128);
    expect(await values(amp.masters)).toEqual(before);
    expect(await values(lin.parameters())).toEqual(await values(before.map((v) => k.tensor(v).to('float16'))));
    for (let i = 0; i < 2; i++) {
      micro();
      expect(await amp.step(opt, 1e9)).toBe(true);
      opt.zeroGrad();
    }
    expect(amp.scaler!.stateDict()).toMatchObject({ scale: 256, growthTracker: 0 });
  });

  it('bf16 has no loss scale and never skips', async () => {
    const { amp, opt, micro } = setup({ scale: 1, dtype: 'bfloat16' });
    expect(amp.scaler).toBeNull();
    micro();
    expect(await values([amp.masters[1].grad!])).toEqual([[1, 1]]);
    expect(await amp.step(opt, 1e9)).toBe(true);
    expect(halfDTypeOf('bf16')).toBe('bfloat16');
    expect(halfDTypeOf('fp16')).toBe('float16');
    expect(halfDTypeOf('no')).toBeNull();
    expect(halfDTypeOf(null)).toBeNull();
  });

  it('saves exact masters: inside withMasterWeights the trained modules are float32 and hold them bit for bit', async () => {
    const { lin, amp, opt, micro } = setup({ scale: 2 ** 8 });
    // Lr 1/3 makes masters that float16 cannot hold, so a cast back would show.
    opt.paramGroups[0].lr = 1 / 3;
    micro();
    await amp.step(opt, 1e9);
    opt.zeroGrad();
    const masters = await values(amp.masters);
    const inside = await amp.withMasterWeights(async () => {
      expect(lin.weight.dtype).toBe('float32');
      return values(lin.parameters());
    });
    expect(inside).toEqual(masters);
    expect(lin.weight.dtype).toBe('float16');
    expect(await values(lin.parameters())).not.toEqual(masters);
  });
});
