import * as k from '@kiln/tensor-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schedulerFromConfig } from '../src/index.js';
import { loadGoldens, relErr } from './golden-helpers.js';

// Schedulers are tensor ops plus float32 scalars computed in JS, so they run unchanged on any
// backend: the goldens hold on wasm too, and a seeded ancestral run is the same image on cpu and wasm.
const picks = [
  'EulerAncestralDiscreteScheduler_v_prediction',
  'DPMSolverMultistepScheduler_karras',
  'UniPCMultistepScheduler_epsilon',
  'DDPMScheduler_default',
  'PNDMScheduler_default',
];
const goldens = loadGoldens().filter((g) => picks.includes(`${g.scheduler}_${g.variant}`));

async function run(name: string, config: Record<string, unknown>, seed: number): Promise<Float32Array> {
  const s = schedulerFromConfig(config, { className: name });
  s.setTimesteps(8);
  const g = new k.Generator(seed);
  let x = k.mul(k.randn([1, 4, 8, 8], { generator: g }), s.initNoiseSigma);
  for (const t of s.timesteps) x = s.step(k.mul(s.scaleModelInput(x, t), 0.2), t, x, { generator: g }).prevSample;
  return (await x.data()) as Float32Array;
}

describe('on the wasm backend', () => {
  beforeAll(async () => {
    await k.useBackend('wasm');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  it.each(goldens.map((g) => [`${g.scheduler}_${g.variant}`, g] as const))('%s matches diffusers', async (_n, g) => {
    const s = schedulerFromConfig(g.config, { className: g.scheduler });
    s.setTimesteps(g.num_inference_steps);
    let x = k.mul(k.tensor(g.initial_noise, { shape: g.shape }), s.initNoiseSigma);
    expect(x.device).toBe('wasm');
    for (const st of g.steps) {
      const t = s.timesteps[st.i];
      const scaled = s.scaleModelInput(x, t);
      expect(relErr((await scaled.data()) as Float32Array, st.scaled_model_input)).toBeLessThanOrEqual(1e-6);
      const out = s.step(k.tensor(st.model_output, { shape: g.shape }), t, x, {
        varianceNoise: st.noise ? k.tensor(st.noise, { shape: g.shape }) : undefined,
      });
      expect(relErr((await out.prevSample.data()) as Float32Array, st.prev_sample), `step ${st.i}`).toBeLessThanOrEqual(1e-6);
      x = out.prevSample;
    }
  });

  it('a seeded ancestral run gives the same numbers as on cpu', async () => {
    const config = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, steps_offset: 1 };
    for (const name of ['EulerAncestralDiscreteScheduler', 'DDPMScheduler']) {
      const wasm = await run(name, config, 17);
      await k.useBackend('cpu');
      const cpu = await run(name, config, 17);
      await k.useBackend('wasm');
      expect(relErr(wasm, cpu), name).toBeLessThanOrEqual(1e-6);
    }
  });
});
