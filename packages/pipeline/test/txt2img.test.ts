import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { PipelineError, StableDiffusionPipeline } from '@kiln/pipeline';
import type { StepInfo } from '@kiln/pipeline';
import { relDiff, tinyModelFolder } from './helpers.js';

// Small and quick: 32×32 images (16×16 latents), a few steps.
const base = { prompt: 'a red fox in the snow', numInferenceSteps: 4, width: 32, height: 32 };

describe('txt2img on the tiny model', () => {
  let dir: string;
  let wasm: StableDiffusionPipeline;
  beforeAll(async () => {
    dir = await tinyModelFolder();
    await k.useBackend('wasm');
    wasm = await StableDiffusionPipeline.fromPretrained(dir);
  }, 120_000);

  it('is deterministic per seed, and different seeds give different images', async () => {
    const a = await wasm.txt2img({ ...base, seed: 11 });
    const b = await wasm.txt2img({ ...base, seed: 11 });
    const c = await wasm.txt2img({ ...base, seed: 12 });
    expect(a.seed).toBe(11);
    expect(a.scheduler).toBe('PNDMScheduler');
    expect(await a.images.data()).toEqual(await b.images.data());
    expect(a.rgba[0].data).toEqual(b.rgba[0].data);
    expect(await relDiff(c.images, a.images)).toBeGreaterThan(1e-3);
    // A generator seeded the same way is the same draw as the seed.
    const g = await wasm.txt2img({ ...base, generator: new k.Generator(11) });
    expect(g.seed).toBeUndefined();
    expect(await g.images.data()).toEqual(await a.images.data());
    for (const r of [a, b, c, g]) r.images.dispose();
  }, 60_000);

  it('makes the same image on cpu and wasm (Philox noise, float tolerance)', async () => {
    const w = await wasm.txt2img({ ...base, seed: 5, scheduler: 'euler_a' });
    await k.useBackend('cpu');
    const cpu = await StableDiffusionPipeline.fromPretrained(dir);
    const c = await cpu.txt2img({ ...base, seed: 5, scheduler: 'euler_a' });
    await k.useBackend('wasm');
    expect(await relDiff(w.images, c.images)).toBeLessThan(1e-4);
    const bytesOff = w.rgba[0].data.reduce((n, v, i) => Math.max(n, Math.abs(v - c.rgba[0].data[i])), 0);
    expect(bytesOff).toBeLessThanOrEqual(1);
    w.images.dispose();
    c.images.dispose();
    cpu.dispose();
  }, 120_000);

  it('returns [N, 3, H, W] in [0, 1] and RGBA bytes for a batch of prompts × images per prompt', async () => {
    const { images, rgba } = await wasm.txt2img({
      ...base,
      prompt: ['a fox', 'a lighthouse'],
      negativePrompt: 'blurry',
      numImagesPerPrompt: 2,
      seed: 1,
      width: 48,
      height: 32,
    });
    expect(images.shape).toEqual([4, 3, 32, 48]);
    const x = await images.data();
    expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...x)).toBeLessThanOrEqual(1);
    expect(rgba).toHaveLength(4);
    expect(rgba[0]).toMatchObject({ width: 48, height: 32 });
    expect(rgba[0].data.length).toBe(48 * 32 * 4);
    expect(rgba[3].data[3]).toBe(255);
    expect(rgba[0].data[0]).toBe(Math.round(x[0] * 255));
    images.dispose();
  }, 60_000);

  it('runs each step in its own tidy: live tensors stay flat across steps and nothing is left after', async () => {
    const before = k.memory().liveTensors;
    const live: number[] = [];
    const { images } = await wasm.txt2img({
      ...base,
      numInferenceSteps: 8,
      scheduler: 'euler',
      seed: 3,
      callback: () => void live.push(k.memory().liveTensors),
    });
    expect(live).toHaveLength(8);
    expect(new Set(live).size).toBe(1);
    images.dispose();
    expect(k.memory().liveTensors).toBe(before);
    // PNDM and DPM-Solver keep a short history of model outputs; after it fills, memory is flat too.
    const hist: number[] = [];
    (
      await wasm.txt2img({
        ...base,
        numInferenceSteps: 8,
        scheduler: 'pndm',
        seed: 3,
        callback: () => void hist.push(k.memory().liveTensors),
      })
    ).images.dispose();
    expect(new Set(hist.slice(4)).size).toBe(1);
  }, 60_000);

  it('tells the callback each step and timestep, and swaps schedulers by name', async () => {
    const steps: StepInfo[] = [];
    const r = await wasm.txt2img({
      ...base,
      numInferenceSteps: 3,
      scheduler: 'DDIMScheduler',
      seed: 2,
      callback: (s) => void steps.push(s),
    });
    expect(r.scheduler).toBe('DDIMScheduler');
    expect(steps.map((s) => [s.step, s.numSteps, s.timestep])).toEqual([
      [0, 3, 667],
      [1, 3, 334],
      [2, 3, 1],
    ]);
    r.images.dispose();
    expect(wasm.scheduler.className).toBe('PNDMScheduler');
  }, 60_000);

  it('clipSkip takes an earlier hidden state through the final layer norm (diffusers clip_skip)', () => {
    const last = wasm.encodePrompt(['a fox']);
    const skipped = wasm.encodePrompt(['a fox'], { clipSkip: 1 });
    const out = wasm.textEncoder.forward([wasm.tokenizer.encode('a fox')]);
    const want = wasm.textEncoder.textModel.finalLayerNorm.forward(out.hiddenStates[1]);
    return Promise.all([relDiff(last, out.lastHiddenState), relDiff(skipped, want), relDiff(skipped, last)]).then(([a, b, c]) => {
      expect(a).toBe(0);
      expect(b).toBe(0);
      expect(c).toBeGreaterThan(1e-3);
    });
  });

  it('refuses bad options with a PipelineError naming the option', async () => {
    const bad = async (o: object, msg: RegExp) => {
      const before = k.memory().liveTensors;
      await expect(wasm.txt2img({ ...base, ...o })).rejects.toThrow(msg);
      await expect(wasm.txt2img({ ...base, ...o })).rejects.toBeInstanceOf(k.KilnError);
      expect(k.memory().liveTensors).toBe(before);
    };
    await bad({ width: 33 }, /multiples of 2/);
    await bad({ numInferenceSteps: 0 }, /numInferenceSteps must be a positive integer/);
    await bad({ promptEmbeds: k.zeros([1, 77, 32]) }, /either prompt or promptEmbeds/);
    await bad({ prompt: undefined, promptEmbeds: k.zeros([1, 77, 16]) }, /promptEmbeds must be \[B, L, 32\]/);
    await bad({ latents: k.zeros([1, 4, 8, 8]) }, /latents must be \[1, 4, 16, 16\]/);
    await bad({ prompt: ['a', 'b'], negativePrompt: ['x', 'y', 'z'] }, /3 negative prompts for 2 prompts/);
    await bad({ clipSkip: 2 }, /clipSkip must be an integer from 0 to 1/);
    await bad({ seed: -1 }, /seed must be a non-negative integer/);
    await bad({ scheduler: 'FlowMatchEulerDiscreteScheduler' }, /not a scheduler Kiln implements/);
    await expect(wasm.txt2img({ ...base, width: 33 })).rejects.toBeInstanceOf(PipelineError);
  }, 60_000);
});
