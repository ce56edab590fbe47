import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { schedulerFromConfig, SigmaScheduler } from '../src/index.js';
import { loadGoldens, relErr } from './golden-helpers.js';

// Every scheduler, prediction type, spacing, Karras and zero-SNR variant diffusers v0.31.0 ran
// (fixtures/README.md): the schedule and every step's output must match to 1e-6 relative in float32.
const TOL = 1e-6;
const goldens = loadGoldens();

describe.each(goldens.map((g) => [`${g.scheduler}_${g.variant}`, g] as const))('%s matches diffusers', (_name, g) => {
  const make = () => {
    const s = schedulerFromConfig(g.config, { className: g.scheduler });
    s.setTimesteps(g.num_inference_steps);
    return s;
  };

  it('ᾱ, timesteps, sigmas and init noise sigma', () => {
    const s = make();
    expect(relErr(s.alphasCumprod, g.alphas_cumprod)).toBeLessThanOrEqual(TOL);
    expect(s.timesteps.length).toBe(g.timesteps.length);
    if (g.timesteps_dtype === 'int64') expect(s.timesteps).toEqual(g.timesteps);
    else expect(relErr(s.timesteps, g.timesteps)).toBeLessThanOrEqual(TOL);
    if (g.sigmas) {
      expect(s).toBeInstanceOf(SigmaScheduler);
      expect(relErr((s as SigmaScheduler<never>).sigmas, g.sigmas)).toBeLessThanOrEqual(TOL);
    }
    expect(Math.abs(s.initNoiseSigma - g.init_noise_sigma) / g.init_noise_sigma).toBeLessThanOrEqual(TOL);
  });

  it('every step (scaled input, prev sample, x₀ prediction), chained from the initial noise', async () => {
    const s = make();
    const shape = g.shape;
    let sample = k.mul(k.tensor(g.initial_noise, { shape }), s.initNoiseSigma);
    for (const step of g.steps) {
      const t = s.timesteps[step.i];
      // Euler's fractional timesteps are float32; Karras ones may be 1 ulp off (numpy's float32 log).
      expect(Math.abs(t - Math.fround(step.t))).toBeLessThanOrEqual(TOL * Math.abs(step.t));
      const scaled = s.scaleModelInput(sample, t);
      expect(relErr((await scaled.data()) as Float32Array, step.scaled_model_input), `scaled input, step ${step.i}`).toBeLessThanOrEqual(
        TOL,
      );
      const out = s.step(k.tensor(step.model_output, { shape }), t, sample, {
        varianceNoise: step.noise ? k.tensor(step.noise, { shape }) : undefined,
        eta: g.step_kwargs?.eta,
        sChurn: g.step_kwargs?.s_churn,
        sTmin: g.step_kwargs?.s_tmin,
        sTmax: g.step_kwargs?.s_tmax,
      });
      const prev = (await out.prevSample.data()) as Float32Array;
      expect(relErr(prev, step.prev_sample), `prev_sample, step ${step.i} (t=${t})`).toBeLessThanOrEqual(TOL);
      if (step.pred_original_sample) {
        expect(out.predOriginalSample).toBeDefined();
        const x0 = (await out.predOriginalSample!.data()) as Float32Array;
        expect(relErr(x0, step.pred_original_sample), `pred_original_sample, step ${step.i}`).toBeLessThanOrEqual(TOL);
      }
      sample = out.prevSample;
    }
    expect(relErr((await sample.data()) as Float32Array, g.final_sample)).toBeLessThanOrEqual(TOL);
  });

  it('addNoise at the img2img start (timesteps[begin_index])', async () => {
    const s = make();
    const a = g.add_noise;
    s.setBeginIndex(a.begin_index); // every scheduler takes it; σ schedulers noise at that index
    const t = s.timesteps[a.begin_index];
    expect(Math.abs(t - Math.fround(a.t))).toBeLessThanOrEqual(TOL * Math.abs(a.t));
    const noisy = s.addNoise(k.tensor(a.original, { shape: g.shape }), k.tensor(a.noise, { shape: g.shape }), [t]);
    expect(relErr((await noisy.data()) as Float32Array, a.result)).toBeLessThanOrEqual(TOL);
  });
});
