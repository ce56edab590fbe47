import * as k from '@kiln/tensor-core';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  PNDMScheduler,
  SCHEDULERS,
  SchedulerConfigError,
  SchedulerError,
  UniPCMultistepScheduler,
  minSnrLossWeights,
  parseSchedulerConfigJson,
  rescaleZeroTerminalSnr,
  betasForConfig,
  cumprodOfAlphas,
  schedulerFromConfig,
} from '../src/index.js';
import type { SchedulerBase } from '../src/index.js';
import { fixturesDir, relErr } from './golden-helpers.js';

/** SD 1.5's scheduler/scheduler_config.json. */
const SD15 = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};
const shape = [1, 4, 8, 8];

/** Runs a scheduler over its schedule with a fake model (a fixed linear map of the input). */
async function sample(s: SchedulerBase, steps: number, generator?: k.Generator): Promise<Float32Array> {
  s.setTimesteps(steps);
  let x = k.tidy(() => k.mul(k.randn(shape, { seed: 3 }), s.initNoiseSigma));
  for (const t of s.timesteps) {
    const next = k.tidy(() => s.step(k.mul(s.scaleModelInput(x, t), 0.3), t, x, { generator }).prevSample);
    x.dispose();
    x = next;
  }
  const out = (await x.data()) as Float32Array;
  x.dispose();
  return out;
}

describe('ancestral noise comes from Kiln generators', () => {
  const sde = () => DPMSolverMultistepScheduler.fromConfig({ ...SD15, algorithm_type: 'sde-dpmsolver++' });
  for (const make of [() => EulerAncestralDiscreteScheduler.fromConfig(SD15), () => DDPMScheduler.fromConfig(SD15), sde]) {
    const name = `${make().className}(${make().config.algorithm_type ?? ''})`;
    it(`${name}: the same seed gives the same sample, another seed another`, async () => {
      const a = await sample(make(), 10, new k.Generator(7));
      const b = await sample(make(), 10, new k.Generator(7));
      const c = await sample(make(), 10, new k.Generator(8));
      expect(b).toEqual(a);
      expect(relErr(c, a)).toBeGreaterThan(1e-2);
    });

    it(`${name}: each step draws randn(shape, { generator }), continuing the stream`, async () => {
      const s = make();
      s.setTimesteps(5);
      const g = new k.Generator(11);
      const replay = new k.Generator().setState(g.getState());
      const x = k.randn(shape, { seed: 1 });
      const eps = k.randn(shape, { seed: 2 });
      const [t0, t1] = s.timesteps;
      const viaGenerator = [s.step(eps, t0, x, { generator: g }).prevSample, s.step(eps, t1, x, { generator: g }).prevSample];
      const s2 = make();
      s2.setTimesteps(5);
      const injected = [
        s2.step(eps, t0, x, { varianceNoise: k.randn(shape, { generator: replay }) }).prevSample,
        s2.step(eps, t1, x, { varianceNoise: k.randn(shape, { generator: replay }) }).prevSample,
      ];
      for (let i = 0; i < 2; i++) expect(await viaGenerator[i].data()).toEqual(await injected[i].data());
      expect(g.offset).toBe(replay.offset);
    });
  }

  it('deterministic schedulers draw nothing', async () => {
    const g = new k.Generator(5);
    for (const make of [DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler]) {
      await sample(make.fromConfig(SD15), 4, g);
    }
    expect(g.offset).toBe(0);
  });
});

describe('bad configs and calls raise typed errors naming the field', () => {
  const field = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(SchedulerConfigError);
      expect(e).toBeInstanceOf(k.KilnError);
      return (e as SchedulerConfigError).field;
    }
    throw new Error('no error');
  };

  it.each([
    ['beta_schedule', { beta_schedule: 'cosine' }],
    ['steps_offset', { steps_offset: -1 }],
    ['num_train_timesteps', { num_train_timesteps: '1000' }],
    ['num_train_timesteps', { num_train_timesteps: 0 }],
    ['prediction_type', { prediction_type: 'x0' }],
    ['timestep_spacing', { timestep_spacing: 'even' }],
    ['beta_start', { beta_start: 0.5, beta_end: 0.1 }],
    ['trained_betas', { trained_betas: [0.1, 0.2] }],
    ['thresholding', { thresholding: true }],
    ['variance_type', { variance_type: 'learned_range' }],
  ])('%s: %j', (name, bad) => {
    expect(field(() => DDPMScheduler.fromConfig({ ...SD15, ...bad }))).toBe(name);
  });

  it('names the file and the supported values', () => {
    expect(() => DDIMScheduler.fromConfig({ beta_schedule: 'cosine' }, 'sd15/scheduler/scheduler_config.json')).toThrow(
      /^sd15\/scheduler\/scheduler_config\.json: invalid scheduler config: beta_schedule: .*scaled_linear/,
    );
    expect(() => DDPMScheduler.fromConfig({ variance_type: 'learned' })).toThrow(
      /variance_type: "learned" is not supported by Kiln \(supported: "fixed_small"/,
    );
  });

  it('refuses what a scheduler cannot do, as diffusers does, by field', () => {
    expect(field(() => PNDMScheduler.fromConfig({ prediction_type: 'sample' }))).toBe('prediction_type');
    expect(field(() => EulerAncestralDiscreteScheduler.fromConfig({ prediction_type: 'sample' }))).toBe('prediction_type');
    expect(field(() => DPMSolverMultistepScheduler.fromConfig({ solver_order: 3 }))).toBe('solver_order');
    expect(field(() => DPMSolverMultistepScheduler.fromConfig({ algorithm_type: 'dpmsolver+++' }))).toBe('algorithm_type');
    expect(field(() => DPMSolverMultistepScheduler.fromConfig({ algorithm_type: 'sde-dpmsolver' }))).toBe('final_sigmas_type');
    expect(field(() => DPMSolverMultistepScheduler.fromConfig({ algorithm_type: 'dpmsolver' }))).toBe('final_sigmas_type');
    expect(field(() => EulerDiscreteScheduler.fromConfig({ use_exponential_sigmas: true }))).toBe('use_exponential_sigmas');
    expect(field(() => UniPCMultistepScheduler.fromConfig({ disable_corrector: [-1] }))).toBe('disable_corrector.0'); // the element is named
    expect(field(() => UniPCMultistepScheduler.fromConfig({ solver_p: { _class_name: 'DDIMScheduler' } }))).toBe('solver_p');
    expect(field(() => EulerDiscreteScheduler.fromConfig({ timestep_type: 'continuous' }))).toBe('timestep_type');
    expect(field(() => schedulerFromConfig({ _class_name: 'KDPM2DiscreteScheduler' }))).toBe('_class_name');
    expect(field(() => schedulerFromConfig({}))).toBe('_class_name');
  });

  it('checks num_inference_steps, call order, timesteps and noise shapes', () => {
    const s = DDIMScheduler.fromConfig(SD15);
    const x = k.zeros(shape);
    expect(() => s.step(x, 951, x)).toThrow(SchedulerError);
    expect(() => s.step(x, 951, x)).toThrow(/call setTimesteps\(n\) first/);
    for (const n of [0, -3, 2.5]) expect(() => s.setTimesteps(n)).toThrow(/positive integer/);
    expect(() => s.setTimesteps(1001)).toThrow(/num_inference_steps \(1001\) > num_train_timesteps \(1000\)/);
    s.setTimesteps(10);
    expect(() => s.step(x, 1000.5, x)).toThrow(/timestep 1000.5 is not an integer in \[0, 1000\)/);
    const e = EulerDiscreteScheduler.fromConfig(SD15);
    e.setTimesteps(10);
    expect(() => e.step(x, 500, x)).toThrow(/timestep 500 is not in the schedule/);
    const d = DDPMScheduler.fromConfig(SD15);
    d.setTimesteps(10);
    expect(() => d.setBeginIndex(10)).toThrow(/setBeginIndex: 10 is not an index of the 10 timesteps/);
    expect(() => d.step(x, d.timesteps[0], x, { varianceNoise: k.zeros([1, 4, 4, 4]) })).toThrow(
      /varianceNoise has shape \[1,4,4,4\], the sample has \[1,4,8,8\]/,
    );
  });
});

describe('fromConfig: any scheduler from any scheduler config', () => {
  it('swaps classes keeping the shared fields and unknown ones, by name or alias', () => {
    const eulerA = schedulerFromConfig(SD15, { className: 'euler_a' });
    expect(eulerA).toBeInstanceOf(EulerAncestralDiscreteScheduler);
    expect(eulerA.config.steps_offset).toBe(1);
    expect(eulerA.config.beta_schedule).toBe('scaled_linear');
    expect(eulerA.config.skip_prk_steps).toBe(true); // PNDM's field, carried along
    expect(eulerA.config.timestep_spacing).toBe('linspace'); // Euler's own default fills the gap
    expect(schedulerFromConfig(SD15)).toBeInstanceOf(PNDMScheduler);
    for (const name of Object.keys(SCHEDULERS)) {
      const s = schedulerFromConfig(SD15, { className: name });
      expect(s.className).toBe(name);
      expect(s.alphasCumprod).toEqual(schedulerFromConfig(SD15).alphasCumprod);
    }
  });

  it('round-trips through toJSON', () => {
    const s = DPMSolverMultistepScheduler.fromConfig({ ...SD15, use_karras_sigmas: true });
    const again = schedulerFromConfig(JSON.parse(JSON.stringify(s.toJSON())));
    expect(again).toBeInstanceOf(DPMSolverMultistepScheduler);
    s.setTimesteps(12);
    again.setTimesteps(12);
    expect(again.timesteps).toEqual(s.timesteps);
  });

  it('reads scheduler_config.json text with Python json extensions', () => {
    const c = parseSchedulerConfigJson('{"lambda_min_clipped": -Infinity, "note": "Infinity and NaN stay text", "x": NaN}');
    expect(c.lambda_min_clipped).toBe(-Infinity);
    expect(c.note).toBe('Infinity and NaN stay text');
    expect(c.x).toBeNaN();
    expect(() => parseSchedulerConfigJson('{"a": 1', 'bad.json')).toThrow(/^bad\.json: invalid scheduler config: not valid JSON/);
    expect(() => parseSchedulerConfigJson('[1]')).toThrow(SchedulerConfigError);
  });
});

describe('training helpers match diffusers', () => {
  const ref = parseSchedulerConfigJson(readFileSync(`${fixturesDir}training/ddpm_training.json`, 'utf8')) as unknown as {
    config: Record<string, unknown>;
    timesteps: number[];
    shape: number[];
    original: number[];
    noise: number[];
    add_noise: number[];
    velocity: number[];
    snr: number[];
    min_snr_gamma: number;
    min_snr_weights: Record<'epsilon' | 'v_prediction' | 'sample', number[]>;
  };
  const s = DDPMScheduler.fromConfig(ref.config);
  const x0 = k.tensor(ref.original, { shape: ref.shape });
  const noise = k.tensor(ref.noise, { shape: ref.shape });

  it('addNoise and getVelocity at per-sample timesteps (numbers or an int32 tensor)', async () => {
    const ids = k.tensor(ref.timesteps, { dtype: 'int32' });
    for (const t of [ref.timesteps, ids]) {
      expect(relErr((await s.addNoise(x0, noise, t).data()) as Float32Array, ref.add_noise)).toBeLessThanOrEqual(1e-6);
      expect(relErr((await s.getVelocity(x0, noise, t).data()) as Float32Array, ref.velocity)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('snr (compute_snr) and min-SNR-γ weights for each prediction type', async () => {
    const snr = s.snr(k.tensor(ref.timesteps, { dtype: 'int32' }));
    expect(snr.shape).toEqual([4]);
    expect(relErr((await snr.data()) as Float32Array, ref.snr)).toBeLessThanOrEqual(1e-6);
    for (const type of ['epsilon', 'v_prediction', 'sample'] as const) {
      const w = (await minSnrLossWeights(snr, ref.min_snr_gamma, type).data()) as Float32Array;
      expect(relErr(w, ref.min_snr_weights[type])).toBeLessThanOrEqual(1e-6);
    }
  });

  it('zero-terminal-SNR rescaling ends at ᾱ_T = 0 and keeps ᾱ_0', async () => {
    const betas = betasForConfig(DDPMScheduler.fromConfig(SD15).config);
    const rescaled = cumprodOfAlphas(rescaleZeroTerminalSnr(betas));
    expect(rescaled[999]).toBe(0);
    expect(Math.abs(rescaled[0] - cumprodOfAlphas(betas)[0])).toBeLessThan(1e-7);
    const s0 = DDIMScheduler.fromConfig({ ...SD15, rescale_betas_zero_snr: true });
    expect(Array.from((await s0.snr([0, 999]).data()) as Float32Array)[1]).toBe(0); // pure noise at t = T − 1
  });
});

describe('half-precision latents', () => {
  it('σ schedulers step in float32 and return the model output dtype, as diffusers', async () => {
    for (const name of ['EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler', 'DPMSolverMultistepScheduler']) {
      const run = async (dtype: 'float32' | 'float16') => {
        const s = schedulerFromConfig(SD15, { className: name });
        s.setTimesteps(6);
        const g = new k.Generator(3);
        let x = k.mul(k.randn(shape, { seed: 4 }), s.initNoiseSigma).to(dtype);
        for (const t of s.timesteps) {
          const eps = k.mul(s.scaleModelInput(x, t), 0.2).to(dtype);
          x = s.step(eps, t, x, { generator: g }).prevSample;
          expect(x.dtype).toBe(dtype);
        }
        return Float32Array.from((await x.to('float32').data()) as Float32Array);
      };
      expect(relErr(await run('float16'), await run('float32')), name).toBeLessThan(5e-3);
    }
  });
});

describe('memory', () => {
  it('a sampling loop leaks no tensors (state is released by setTimesteps)', async () => {
    for (const make of [PNDMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, EulerAncestralDiscreteScheduler]) {
      const s = make.fromConfig(SD15);
      await sample(s, 6, new k.Generator(1));
      const live = k.memory().liveTensors;
      await sample(s, 6, new k.Generator(1));
      expect(k.memory().liveTensors, s.className).toBe(live);
    }
  });
});
