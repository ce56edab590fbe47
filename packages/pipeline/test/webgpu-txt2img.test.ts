/**
 * txt2img on webgpu: the same seed gives the image cpu makes, and the diffusers reference run
 * (PNDM with CFG) matches to 1e-3. Small: 16×16 latents, few steps (SwiftShader and lavapipe are
 * CPU Vulkan drivers). Skips without an adapter, fails then in CI (KILN_WEBGPU_REQUIRED).
 */
import { describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { FIXTURES, relDiff, tinyModelFolder } from './helpers.js';
import { REFERENCE_CASES } from './reference-cases.js';

const unavailable: string | null = await k.initBackend('webgpu').then(
  () => null,
  (err: Error) => err.message,
);
if (unavailable !== null && (process.env.CI || process.env.KILN_WEBGPU_REQUIRED))
  throw new Error(`webgpu backend required but unavailable: ${unavailable}`);
const suite = unavailable === null ? describe : describe.skip;

suite('txt2img on webgpu', () => {
  it('makes the image cpu makes from the same seed, and matches diffusers on the PNDM run', async () => {
    const dir = await tinyModelFolder();
    const options = { prompt: 'a red fox', seed: 9, numInferenceSteps: 3, width: 32, height: 32, scheduler: 'euler_a' };
    await k.useBackend('cpu');
    const cpu = await StableDiffusionPipeline.fromPretrained(dir);
    const want = await cpu.txt2img(options);
    const ref = await loadSafetensors(`${FIXTURES}reference.safetensors`);
    await k.useBackend('webgpu');
    const gpu = await StableDiffusionPipeline.fromPretrained(dir);
    const got = await gpu.txt2img(options);
    expect(await relDiff(got.images, await want.images.toBackend('webgpu'))).toBeLessThan(1e-3);

    const c = REFERENCE_CASES[0];
    const on = (name: string) => ref[`${c.name}.${name}`].toBackend('webgpu');
    const { images } = await gpu.txt2img({
      promptEmbeds: await on('prompt_embeds'),
      negativePromptEmbeds: await on('negative_prompt_embeds'),
      latents: await on('latents'),
      numInferenceSteps: c.steps,
      guidanceScale: c.guidanceScale,
      width: 32,
      height: 32,
    });
    expect(await relDiff(images, await on('image'))).toBeLessThan(1e-3);
    gpu.dispose();
    cpu.dispose();
    await k.useBackend('cpu');
  });
});
