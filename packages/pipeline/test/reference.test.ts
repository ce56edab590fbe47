import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { FIXTURES, relDiff, tinyModelFolder } from './helpers.js';
import { REFERENCE_CASES } from './reference-cases.js';

/**
 * txt2img against diffusers v0.31.0 (fixtures/reference.safetensors: scripts/make_reference_image.py
 * ran diffusers' UNet, scheduler and VAE in StableDiffusionPipeline's loop on the tiny folder Kiln
 * writes, from the same prompt embeddings and initial latents). Three schedulers, CFG with a
 * negative prompt, guidance rescale, a batch of two, and guidance off.
 */
const backend = process.env.KILN_TEST_BACKENDS?.split(',')[0] ?? 'wasm';
// The issue asks for 1e-3; measured: ≤ 7.2e-7 on cpu, ≤ 2.7e-6 on wasm. 1e-4 catches a regression long before it shows.
const TOL = 1e-4;

describe(`txt2img against diffusers (${backend})`, () => {
  let ref: Record<string, k.Tensor>;
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    const dir = await tinyModelFolder();
    await k.useBackend('cpu');
    ref = await loadSafetensors(`${FIXTURES}reference.safetensors`);
    await k.useBackend(backend);
    pipe = await StableDiffusionPipeline.fromPretrained(dir);
  }, 120_000);

  const on = async (t: k.Tensor) => (backend === 'cpu' ? t : t.toBackend(backend));

  it('encodes prompts as the fixture recorded them (same tokenizer files and text encoder weights)', async () => {
    for (const c of REFERENCE_CASES) {
      const embeds = pipe.encodePrompt(c.prompts);
      expect(await relDiff(embeds, ref[`${c.name}.prompt_embeds`]), c.name).toBeLessThan(1e-5);
      embeds.dispose();
    }
  });

  it.each(REFERENCE_CASES)(
    '$name: the image matches diffusers to 1e-4 relative',
    async (c) => {
      const promptEmbeds = await on(ref[`${c.name}.prompt_embeds`]);
      const negativePromptEmbeds = await on(ref[`${c.name}.negative_prompt_embeds`]);
      const latents = await on(ref[`${c.name}.latents`]);
      const { images } = await pipe.txt2img({
        promptEmbeds,
        negativePromptEmbeds,
        latents,
        numInferenceSteps: c.steps,
        guidanceScale: c.guidanceScale,
        guidanceRescale: c.guidanceRescale,
        scheduler: c.scheduler,
        width: 32,
        height: 32,
      });
      const want = ref[`${c.name}.image`];
      expect(images.shape).toEqual(want.shape);
      expect(await relDiff(images, want)).toBeLessThan(TOL);
      images.dispose();
    },
    120_000,
  );
});
