import * as k from '@kiln/tensor-core';
import { SCHEDULERS, schedulerFromConfig } from '@kiln/scheduler';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClassifierFreeGuidance, GuidanceError, classifierFreeGuidance, guidedStep, rescaleNoiseCfg } from '../src/index.js';

// diffusers' guidance lines on PyTorch (scripts/make_guidance_reference.py).
const ref = JSON.parse(readFileSync(new URL('./fixtures/cfg_reference.json', import.meta.url), 'utf8')) as {
  shape: number[];
  uncond: number[];
  text: number[];
  cases: { guidance_scale: number; guidance_rescale: number; noise_pred: number[] }[];
};

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return a.length === b.length ? d / s : Infinity;
}

describe('classifier-free guidance matches diffusers', () => {
  const uncond = k.tensor(ref.uncond, { shape: ref.shape });
  const text = k.tensor(ref.text, { shape: ref.shape });
  const batched = k.cat([uncond, text], 0); // the UNet's output for cat([latents] * 2)

  it.each(ref.cases.map((c) => [c.guidance_scale, c.guidance_rescale, c] as const))('scale %d, rescale %d', async (scale, rescale, c) => {
    const cfg = new ClassifierFreeGuidance({ guidanceScale: scale, guidanceRescale: rescale });
    if (scale <= 1) {
      // diffusers runs no guidance at scale 1: one forward, output untouched; the formula agrees.
      expect(cfg.copies).toBe(1);
      expect(cfg.combine(text)).toBe(text);
      expect(relErr((await classifierFreeGuidance(uncond, text, scale).data()) as Float32Array, c.noise_pred)).toBeLessThanOrEqual(1e-6);
      return;
    }
    const out = cfg.combine(batched);
    expect(out.shape).toEqual(ref.shape);
    expect(relErr((await out.data()) as Float32Array, c.noise_pred)).toBeLessThanOrEqual(1e-6);
  });

  it('by hand: uncond + s·(cond − uncond), and rescale to the conditional std', async () => {
    const u = k.tensor([[1, 2, 3, 4]]);
    const c = k.tensor([[2, 2, 5, 0]]);
    expect(Array.from((await classifierFreeGuidance(u, c, 3).data()) as Float32Array)).toEqual([4, 2, 9, -8]);
    // std (unbiased) of c is √(14/3) / … : guided [4,2,9,-8] scaled by std(c)/std(guided), φ = 1.
    const guided = k.tensor([[4, 2, 9, -8]]);
    const std = (v: number[]) => {
      const m = v.reduce((a, b) => a + b) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
    };
    const ratio = std([2, 2, 5, 0]) / std([4, 2, 9, -8]);
    const got = (await rescaleNoiseCfg(guided, c, 1).data()) as Float32Array;
    expect(
      relErr(
        got,
        [4, 2, 9, -8].map((x) => x * ratio),
      ),
    ).toBeLessThan(1e-6);
    const half = (await rescaleNoiseCfg(guided, c, 0.5).data()) as Float32Array;
    expect(
      relErr(
        half,
        [4, 2, 9, -8].map((x) => 0.5 * x * ratio + 0.5 * x),
      ),
    ).toBeLessThan(1e-6);
  });
});

describe('batching: one forward for unconditional and conditional', () => {
  it('expands latents and pairs negative-prompt embeddings, unconditional first', async () => {
    const cfg = new ClassifierFreeGuidance({ guidanceScale: 5 });
    const latents = k.randn([3, 4, 2, 2], { seed: 1 });
    const x = cfg.expandLatents(latents);
    expect(x.shape).toEqual([6, 4, 2, 2]);
    expect(await x.slice(0, 3, 6).data()).toEqual(await latents.data());
    const cond = k.randn([3, 77, 8], { seed: 2 });
    const neg = k.randn([3, 77, 8], { seed: 3 });
    const ctx = cfg.conditioning(cond, neg);
    expect(ctx.shape).toEqual([6, 77, 8]);
    expect(await ctx.slice(0, 0, 3).data()).toEqual(await neg.data());
    expect(await ctx.slice(0, 3, 6).data()).toEqual(await cond.data());
    // One empty-prompt row serves the whole batch.
    const empty = k.randn([1, 77, 8], { seed: 4 });
    const shared = cfg.conditioning(cond, empty);
    expect(await shared.slice(0, 2, 3).data()).toEqual(await empty.data());
  });

  it('without guidance (scale ≤ 1) the batch is the conditional one alone', () => {
    const cfg = new ClassifierFreeGuidance({ guidanceScale: 1 });
    const latents = k.zeros([2, 4, 2, 2]);
    const cond = k.zeros([2, 77, 8]);
    expect(cfg.expandLatents(latents)).toBe(latents);
    expect(cfg.conditioning(cond)).toBe(cond);
  });

  it('bad arguments raise GuidanceError naming them', () => {
    expect(() => new ClassifierFreeGuidance({ guidanceRescale: 2 })).toThrow(/guidanceRescale must be in \[0, 1\], got 2/);
    expect(() => new ClassifierFreeGuidance({ guidanceScale: NaN })).toThrow(GuidanceError);
    const cfg = new ClassifierFreeGuidance({ guidanceScale: 7.5 });
    expect(() => cfg.conditioning(k.zeros([2, 77, 8]))).toThrow(/needs unconditional/);
    expect(() => cfg.conditioning(k.zeros([2, 77, 8]), k.zeros([2, 77, 4]))).toThrow(
      /uncond \[2,77,4\] does not pair with cond \[2,77,8\]/,
    );
    expect(() => cfg.combine(k.zeros([3, 4, 2, 2]))).toThrow(/must be even/);
    expect(() => classifierFreeGuidance(k.zeros([1, 2]), k.zeros([2, 2]), 3)).toThrow(k.KilnError);
  });
});

describe('works with every scheduler', () => {
  const config = {
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    beta_end: 0.012,
    steps_offset: 1,
    clip_sample: false,
    set_alpha_to_one: false,
    skip_prk_steps: true,
  };
  // A toy denoiser whose conditional and unconditional predictions differ.
  const model = (x: k.Tensor, _t: number, ctx: k.Tensor) => k.mul(x, ctx.mean([1, 2], true).reshape([-1, 1, 1, 1]));

  it.each(Object.keys(SCHEDULERS))('%s: guidedStep equals the hand-written loop', async (name) => {
    const cond = k.full([1, 77, 8], 0.5);
    const uncond = k.full([1, 77, 8], -0.2);
    const cfg = new ClassifierFreeGuidance({ guidanceScale: 7.5, guidanceRescale: 0.5 });
    const ctx = cfg.conditioning(cond, uncond);
    const run = async (manual: boolean) => {
      const s = schedulerFromConfig(config, { className: name });
      s.setTimesteps(4);
      const g = new k.Generator(9);
      let x = k.mul(k.randn([1, 4, 4, 4], { seed: 5 }), s.initNoiseSigma);
      for (const [i, t] of s.timesteps.entries()) {
        if (!manual) x = guidedStep(s, cfg, model, x, t, i, ctx, { generator: g });
        else {
          const input = s.scaleModelInput(k.cat([x, x], 0), t);
          const [eu, ec] = k.chunk(model(input, t, ctx), 2, 0);
          const eps = rescaleNoiseCfg(classifierFreeGuidance(eu, ec, 7.5), ec.contiguous(), 0.5);
          x = s.step(eps, t, x, { generator: g }).prevSample;
        }
      }
      return (await x.data()) as Float32Array;
    };
    const a = await run(false);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(a).toEqual(await run(true));
  });
});
