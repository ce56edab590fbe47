import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline, encodePng } from '@kiln/pipeline';
import { TINY_TEXT_CONFIG, TINY_UNET_CONFIG, TINY_VAE_CONFIG } from '@kiln/pipeline/testing';
import { sampleByHand } from '../src/custom-sampling-loop.js';
import { compareSchedulers } from '../src/swap-scheduler.js';
import { generateWithNegativePrompt } from '../src/cfg-negative-prompt.js';
import { fineTune, subjectImages } from '../src/fine-tune-custom-loss.js';
import { imageToTensor, psnr, roundTrip, tensorToRgba } from '../src/vae-roundtrip.js';
import { convertSingleFile, writeSingleFile } from '../src/single-file-to-diffusers.js';
import { tinyModelDir } from '../src/model.js';

/** Largest absolute difference of two tensors' values. */
async function maxDiff(a: k.Tensor, b: k.Tensor): Promise<number> {
  const [x, y] = [Array.from(await a.data(), Number), Array.from(await b.data(), Number)];
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
}

// The diffusion examples on the tiny model (32×32 images, a few steps), each checked against what
// the pipeline computes for the same request.
describe('diffusion examples (tiny model)', () => {
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    await k.useBackend('wasm');
    pipe = await StableDiffusionPipeline.fromPretrained(await tinyModelDir());
  }, 120_000);

  it('custom-sampling-loop: the hand-written Euler + CFG loop makes the image txt2img makes', async () => {
    const o = { prompt: 'a red fox', seed: 42, steps: 4, guidanceScale: 7.5, size: 32 };
    const before = k.memory().liveTensors;
    const mine = sampleByHand(pipe, o);
    expect(k.memory().liveTensors).toBe(before + 1); // only the images are left
    const ref = await pipe.txt2img({ prompt: o.prompt, seed: o.seed, numInferenceSteps: o.steps, guidanceScale: 7.5, scheduler: 'euler' });
    expect(mine.shape).toEqual([1, 3, 32, 32]);
    expect(await maxDiff(mine, ref.images)).toBeLessThan(1e-5);
    mine.dispose();
    ref.images.dispose();
  }, 120_000);

  it('swap-scheduler: each scheduler runs from the folder config, and each way of choosing it is the same', async () => {
    const runs = await compareSchedulers(pipe, { steps: 4, seed: 7 });
    expect(runs.map((r) => r.scheduler)).toEqual([
      'PNDMScheduler',
      'DDIMScheduler',
      'EulerDiscreteScheduler',
      'EulerAncestralDiscreteScheduler',
      'UniPCMultistepScheduler',
      'DPMSolverMultistepScheduler',
      'LMSDiscreteScheduler',
    ]);
    expect(pipe.scheduler.className).toBe('PNDMScheduler'); // restored
    for (const r of runs) expect(r.image.data.length).toBe(32 * 32 * 4);
    // Different samplers give different images from the same noise.
    const distinct = new Set(runs.map((r) => Buffer.from(r.image.data).toString('base64')));
    expect(distinct.size).toBe(runs.length);
    // Replacing pipe.scheduler is the same as naming it for one call.
    const lms = await pipe.txt2img({ prompt: 'a lighthouse at dusk', seed: 7, numInferenceSteps: 4, scheduler: 'lms' });
    expect(lms.rgba[0].data).toEqual(runs[runs.length - 1].image.data);
    lms.images.dispose();
  }, 240_000);

  it('cfg-negative-prompt: ClassifierFreeGuidance + guidedStep is txt2img with negativePrompt; the negative prompt matters only when guidance is on', async () => {
    const o = {
      prompt: 'a cabin',
      negativePrompt: 'trees, blurry',
      guidanceScale: 6,
      guidanceRescale: 0.7,
      scheduler: 'ddim',
      steps: 4,
      seed: 3,
      size: 32,
    };
    const mine = generateWithNegativePrompt(pipe, o);
    const ref = await pipe.txt2img({
      prompt: o.prompt,
      negativePrompt: o.negativePrompt,
      guidanceScale: o.guidanceScale,
      guidanceRescale: o.guidanceRescale,
      scheduler: o.scheduler,
      numInferenceSteps: o.steps,
      seed: o.seed,
    });
    expect(await maxDiff(mine, ref.images)).toBeLessThan(1e-5);
    const plain = generateWithNegativePrompt(pipe, { ...o, negativePrompt: '' });
    expect(await maxDiff(mine, plain)).toBeGreaterThan(1e-3);
    // At scale 1 guidance is off: one forward on the prompt, the negative prompt is ignored.
    const [off1, off2] = [
      generateWithNegativePrompt(pipe, { ...o, guidanceScale: 1 }),
      generateWithNegativePrompt(pipe, { ...o, guidanceScale: 1, negativePrompt: '' }),
    ];
    expect(await maxDiff(off1, off2)).toBe(0);
    for (const t of [mine, ref.images, plain, off1, off2]) t.dispose();
  }, 120_000);

  it('fine-tune-custom-loss: the pseudo-Huber, min-SNR-weighted loss falls on a fixed batch, memory stays flat', async () => {
    const local = await StableDiffusionPipeline.fromPretrained(await tinyModelDir());
    const images = subjectImages(4, 32);
    const r = await fineTune(local, images, {
      prompt: 'a photo of sks disc',
      steps: 25,
      learningRate: 2e-3,
      batchSize: 2,
      seed: 0,
      snrGamma: 5,
    });
    expect(r.losses.every(Number.isFinite)).toBe(true);
    expect(r.evalAfter).toBeLessThan(r.evalBefore * 0.8);
    expect(new Set(r.liveTensors.slice(1)).size).toBe(1);
    images.dispose();
    local.dispose();
  }, 240_000);

  it('vae-roundtrip: PNG → latents [1, 4, 16, 16] → image; a batch encodes as its rows do alone', async () => {
    const data = new Uint8ClampedArray(40 * 48 * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 37) % 256));
    const x = imageToTensor(encodePng({ width: 48, height: 40, data }), 'test.png', 32); // resized and cropped to 32×32
    expect(x.shape).toEqual([1, 3, 32, 32]);
    const { latents, reconstruction } = roundTrip(pipe.vae, x);
    expect(latents.shape).toEqual([1, 4, 16, 16]);
    expect(reconstruction.shape).toEqual([1, 3, 32, 32]);
    expect(Number.isFinite(await psnr(x, reconstruction))).toBe(true);
    const [rgba] = await tensorToRgba(reconstruction);
    expect([rgba.width, rgba.height]).toEqual([32, 32]);
    // Decoding the posterior mean is vae.forward.
    const fwd = k.noGrad(() => pipe.vae.forward(x).sample.clamp(-1, 1));
    expect(await maxDiff(fwd, reconstruction)).toBeLessThan(1e-4); // ×÷ scaling_factor rounds in f32
    const flipped = k.flip(x, [3]);
    const batch = roundTrip(pipe.vae, k.cat([x, flipped], 0));
    expect(await maxDiff(batch.latents.narrow(0, 0, 1), latents)).toBeLessThan(1e-4);
    // A sample from the posterior differs from its mean, and the seed fixes it.
    const [s1, s2] = [roundTrip(pipe.vae, x, 1), roundTrip(pipe.vae, x, 1)];
    expect(await maxDiff(s1.latents, s2.latents)).toBe(0);
    expect(await maxDiff(s1.latents, latents)).toBeGreaterThan(0);
    for (const t of [
      x,
      latents,
      reconstruction,
      fwd,
      flipped,
      batch.latents,
      batch.reconstruction,
      s1.latents,
      s1.reconstruction,
      s2.latents,
      s2.reconstruction,
    ])
      t.dispose();
  }, 120_000);

  it('single-file-to-diffusers: a single-file checkpoint becomes a folder that loads and makes the same image', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-example-single-'));
    const file = join(dir, 'tiny.safetensors');
    await writeSingleFile(pipe, file);
    const configs = { unet: TINY_UNET_CONFIG, vae: TINY_VAE_CONFIG, textEncoder: TINY_TEXT_CONFIG };
    const converted = await convertSingleFile(file, join(dir, 'folder'), { configs });
    const index = JSON.parse(readFileSync(join(dir, 'folder', 'model_index.json'), 'utf8'));
    expect(index._class_name).toBe('StableDiffusionPipeline');
    for (const sub of [
      'unet/diffusion_pytorch_model.safetensors',
      'vae/diffusion_pytorch_model.safetensors',
      'text_encoder/model.safetensors',
    ])
      expect(existsSync(join(dir, 'folder', sub))).toBe(true);
    const reloaded = await StableDiffusionPipeline.fromPretrained(join(dir, 'folder'));
    const opts = { prompt: 'a fox', seed: 4, numInferenceSteps: 3 };
    const [a, b] = [await reloaded.txt2img(opts), await pipe.txt2img(opts)];
    expect(await maxDiff(a.images, b.images)).toBe(0);
    for (const t of [a.images, b.images]) t.dispose();
    converted.dispose();
    reloaded.dispose();
  }, 120_000);
});
