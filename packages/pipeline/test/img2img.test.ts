import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { ClassifierFreeGuidance, guidedStep } from '@kiln/guidance';
import { schedulerFromConfig } from '@kiln/scheduler';
import { PipelineError, SD15_SCHEDULER_CONFIG, StableDiffusionPipeline, img2imgTimesteps } from '@kiln/pipeline';
import { relDiff, tinyModelFolder } from './helpers.js';

const schedulerOf = (className: string, steps: number) => {
  const s = schedulerFromConfig(SD15_SCHEDULER_CONFIG, { className });
  s.setTimesteps(steps);
  return s;
};

describe('img2imgTimesteps: the schedule from ⌊steps × strength⌋ steps before its end (diffusers get_timesteps)', () => {
  // SD 1.5's scheduler_config.json has no timestep_spacing: DDIM and PNDM take 'leading' (with
  // steps_offset 1: 901, 801, …, 1), Euler its own default 'linspace' (999, 888, …, 0).
  it('DDIM and Euler: strength 0.3 runs the last 3 steps, 0.35 rounds down, 1 runs all', () => {
    expect(img2imgTimesteps(schedulerOf('DDIMScheduler', 10), 10, 0.3)).toEqual([201, 101, 1]);
    expect(img2imgTimesteps(schedulerOf('DDIMScheduler', 10), 10, 0.35)).toEqual([201, 101, 1]);
    expect(img2imgTimesteps(schedulerOf('EulerDiscreteScheduler', 10), 10, 0.3)).toEqual([222, 111, 0]);
    expect(img2imgTimesteps(schedulerOf('EulerDiscreteScheduler', 10), 10, 1)).toEqual([999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  });

  it('PNDM (PLMS, 801 repeated): strength 0.5 starts at index 5 of its 11 timesteps', () => {
    expect(schedulerOf('PNDMScheduler', 10).timesteps).toEqual([901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    expect(img2imgTimesteps(schedulerOf('PNDMScheduler', 10), 10, 0.5)).toEqual([501, 401, 301, 201, 101, 1]);
    // Its extra entry means ⌊10 × 0.05⌋ = 0 steps still leaves the last timestep, as in diffusers.
    expect(img2imgTimesteps(schedulerOf('PNDMScheduler', 10), 10, 0.05)).toEqual([1]);
  });

  it('Heun (order 2) skips 2 entries per skipped step', () => {
    const heun = schedulerOf('HeunDiscreteScheduler', 4);
    expect(img2imgTimesteps(heun, 4, 0.5)).toEqual(heun.timesteps.slice(2 * 2));
  });

  it('a strength outside [0, 1], or one that leaves no step, is a PipelineError', () => {
    expect(() => img2imgTimesteps(schedulerOf('DDIMScheduler', 10), 10, 1.5)).toThrow(/strength must be in \[0, 1\], got 1.5/);
    expect(() => img2imgTimesteps(schedulerOf('DDIMScheduler', 10), 10, 0.09)).toThrow(/leaves no step to run/);
  });
});

describe('pipe.img2img on the tiny model', () => {
  let pipe: StableDiffusionPipeline;
  let start: k.Tensor;
  const base = { prompt: 'a red fox in the snow', numInferenceSteps: 10, seed: 4 };
  beforeAll(async () => {
    await k.useBackend('wasm');
    pipe = await StableDiffusionPipeline.fromPretrained(await tinyModelFolder());
    start = (await pipe.txt2img({ prompt: 'a lighthouse', seed: 1, numInferenceSteps: 4, width: 32, height: 16 })).images;
  }, 120_000);

  it('runs the timesteps at strength, keeps the size, and is deterministic per seed', async () => {
    const seen: number[] = [];
    const a = await pipe.img2img({
      ...base,
      image: start,
      strength: 0.5,
      scheduler: 'euler',
      callback: ({ timestep }) => void seen.push(timestep),
    });
    // Made from the model's PNDM config, Euler inherits its 'leading' spacing: 901, …, 1.
    expect(seen).toEqual([401, 301, 201, 101, 1]);
    expect(a.images.shape).toEqual([1, 3, 16, 32]);
    expect(a.seed).toBe(4);
    const b = await pipe.img2img({ ...base, image: start, strength: 0.5, scheduler: 'euler' });
    expect(await b.images.data()).toEqual(await a.images.data());
    for (const r of [a, b]) r.images.dispose();
  }, 60_000);

  it('is the composition of its parts: VAE sample, then noise, from one generator; addNoise at the first timestep; guided steps', async () => {
    const got = await pipe.img2img({ ...base, image: start, strength: 0.4, scheduler: 'DDIMScheduler', guidanceScale: 5 });
    // The same computation written out with the public building blocks.
    const want = k.tidy(() =>
      k.noGrad(() => {
        const g = new k.Generator(4);
        const scheduler = schedulerOf('DDIMScheduler', 10);
        const timesteps = scheduler.timesteps.slice(6);
        const z = pipe.vae.encode(start.mul(2).sub(1)).latentDist.sample(g).mul(pipe.vae.config.scaling_factor);
        let x = scheduler.addNoise(z, k.randn(z.shape, { generator: g }), [timesteps[0]!]);
        const guidance = new ClassifierFreeGuidance({ guidanceScale: 5 });
        const context = k.cat([pipe.encodePrompt(['']), pipe.encodePrompt([base.prompt])], 0);
        const denoise = (input: k.Tensor, t: number, c: k.Tensor) => pipe.unet.forward(input, t, c).sample;
        timesteps.forEach((t, i) => (x = guidedStep(scheduler, guidance, denoise, x, t, i, context, { generator: g })));
        return pipe.vae.decode(x.div(pipe.vae.config.scaling_factor)).sample.div(2).add(0.5).clamp(0, 1);
      }),
    );
    expect(await relDiff(got.images, want)).toBeLessThan(1e-6);
    got.images.dispose();
    want.dispose();
  }, 60_000);

  it('the image and the strength both change the result', async () => {
    const a = await pipe.img2img({ ...base, image: start, strength: 0.3 });
    const inverted = await pipe.img2img({ ...base, image: k.tidy(() => start.mul(-1).add(1)), strength: 0.3 });
    const stronger = await pipe.img2img({ ...base, image: start, strength: 0.6 });
    expect(await relDiff(inverted.images, a.images)).toBeGreaterThan(0.02);
    expect(await relDiff(stronger.images, a.images)).toBeGreaterThan(0.01);
    for (const r of [a, inverted, stronger]) r.images.dispose();
  }, 60_000);

  it('takes RGBA bytes as the same pixels, one image for several prompts, and gives the same image on cpu', async () => {
    const rgba = await pipe.txt2img({ prompt: 'a lighthouse', seed: 1, numInferenceSteps: 4, width: 32, height: 16 });
    const fromBytes = await pipe.img2img({ ...base, image: rgba.rgba[0]!, strength: 0.6, scheduler: 'euler_a' });
    // The bytes as a [1, 3, H, W] tensor in [0, 1], laid out by hand.
    const { width: W, height: H, data } = rgba.rgba[0]!;
    const planar = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) planar[c * H * W + p] = data[p * 4 + c]! / 255;
    const quantised = k.tensor(planar, { shape: [1, 3, H, W] });
    const fromTensor = await pipe.img2img({ ...base, image: quantised, strength: 0.6, scheduler: 'euler_a' });
    expect(await relDiff(fromBytes.images, fromTensor.images)).toBeLessThan(1e-5); // (b/255)·2−1 rounds apart from b/255 then ·2−1
    const batch = await pipe.img2img({ ...base, prompt: ['a fox', 'a dog'], numImagesPerPrompt: 2, image: start, strength: 0.6 });
    expect(batch.images.shape).toEqual([4, 3, 16, 32]);

    await k.useBackend('cpu');
    const cpu = await StableDiffusionPipeline.fromPretrained(await tinyModelFolder());
    const onCpu = await cpu.img2img({ ...base, image: await quantised.toBackend('cpu'), strength: 0.6, scheduler: 'euler_a' });
    await k.useBackend('wasm');
    expect(await relDiff(fromTensor.images, onCpu.images)).toBeLessThan(1e-4);
    cpu.dispose();
    for (const t of [rgba.images, fromBytes.images, fromTensor.images, batch.images, quantised, onCpu.images]) t.dispose();
  }, 120_000);

  it('bad images, strengths and batches are PipelineErrors, and nothing is left allocated', async () => {
    const before = k.memory().liveTensors;
    const odd = k.zeros([1, 3, 15, 32]);
    await expect(pipe.img2img({ ...base, image: odd })).rejects.toThrow(/32×15; width and height must be multiples of 2/);
    await expect(pipe.img2img({ ...base, image: k.zeros([3, 16, 16]) })).rejects.toThrow(/\[B, 3, H, W\]/);
    await expect(pipe.img2img({ ...base, image: start, strength: -0.1 })).rejects.toThrow(PipelineError);
    await expect(pipe.img2img({ ...base, image: start, strength: 0.05, scheduler: 'ddim' })).rejects.toThrow(/no step to run/);
    const two = k.cat([start, start], 0);
    await expect(pipe.img2img({ ...base, prompt: ['a', 'b', 'c'], image: two })).rejects.toThrow(/2 images cannot be shared by 3 outputs/);
    await expect(pipe.img2img({ ...base, image: [] })).rejects.toThrow(/empty list/);
    await expect(pipe.img2img({ ...base, prompt: undefined, image: start })).rejects.toThrow(/img2img: give either prompt or promptEmbeds/);
    for (const t of [odd, two]) t.dispose();
    expect(k.memory().liveTensors).toBeLessThanOrEqual(before + 1); // the [3, 16, 16] zeros this test made
  }, 60_000);
});
