import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { FIXTURES, relDiff, tinyModelFolder } from './helpers.js';
import { IMG2IMG_REFERENCE_CASES } from './img2img-reference-cases.js';

/**
 * img2img against diffusers v0.31.0's StableDiffusionImg2ImgPipeline (fixtures/img2img-reference.safetensors:
 * scripts/make_img2img_reference.py ran the pipeline class on the tiny folder Kiln writes, from the
 * same init image, prompt embeddings and random draws). DDIM and DPM-Solver++ 2M, strengths 0.5 and
 * 0.8, CFG with negative prompts, and two prompts sharing one image.
 */
const backend = process.env.KILN_TEST_BACKENDS?.split(',')[0] ?? 'wasm';
// Measured: ≤ 8.7e-7 on cpu, ≤ 3.9e-6 on wasm (max |Δ| / max |ref| over the four cases). 1e-5 keeps
// 2.5× headroom over wasm and is far below what a wrong timestep, noising or guidance step gives.
const TOL = 1e-5;

describe(`img2img against diffusers' StableDiffusionImg2ImgPipeline (${backend})`, () => {
  let ref: Record<string, k.Tensor>;
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    const dir = await tinyModelFolder();
    await k.useBackend('cpu');
    ref = await loadSafetensors(`${FIXTURES}img2img-reference.safetensors`);
    await k.useBackend(backend);
    pipe = await StableDiffusionPipeline.fromPretrained(dir);
  }, 120_000);

  const on = async (t: k.Tensor) => (backend === 'cpu' ? t : t.toBackend(backend));

  it("the fixture's prompt embeddings and random draws are what Kiln makes for each case", async () => {
    for (const c of IMG2IMG_REFERENCE_CASES) {
      const embeds = pipe.encodePrompt(c.prompts);
      expect(await relDiff(embeds, ref[`${c.name}.prompt_embeds`]), c.name).toBeLessThan(1e-5);
      const g = new k.Generator(c.seed);
      const eps = k.randn([1, 4, 16, 16], { generator: g });
      const noise = k.randn([c.prompts.length, 4, 16, 16], { generator: g });
      expect(await relDiff(eps, ref[`${c.name}.vae_eps`]), c.name).toBe(0);
      expect(await relDiff(noise, ref[`${c.name}.noise`]), c.name).toBe(0);
      for (const t of [embeds, eps, noise]) t.dispose();
    }
  });

  it.each(IMG2IMG_REFERENCE_CASES)(
    '$name: same timesteps, and the image matches diffusers to 1e-5 relative',
    async (c) => {
      const seen: number[] = [];
      const { images } = await pipe.img2img({
        image: await on(ref.image!),
        promptEmbeds: await on(ref[`${c.name}.prompt_embeds`]!),
        negativePromptEmbeds: await on(ref[`${c.name}.negative_prompt_embeds`]!),
        strength: c.strength,
        numInferenceSteps: c.steps,
        guidanceScale: c.guidanceScale,
        scheduler: c.scheduler,
        seed: c.seed,
        callback: ({ timestep }) => void seen.push(timestep),
      });
      expect(seen).toEqual(((await ref[`${c.name}.timesteps`]!.toArray()) as number[]).map(Number));
      const want = ref[`${c.name}.image`]!;
      expect(images.shape).toEqual(want.shape);
      expect(await relDiff(images, want)).toBeLessThan(TOL);
      images.dispose();
    },
    120_000,
  );
});
