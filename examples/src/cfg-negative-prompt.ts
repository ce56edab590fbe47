/**
 * Classifier-free guidance with a negative prompt, composed from the packages: the negative
 * prompt's embeddings take the unconditional half of the batch (`ClassifierFreeGuidance`), and
 * `guidedStep` runs one guided step with any scheduler. This is what `pipe.txt2img({ prompt,
 * negativePrompt, guidanceScale, guidanceRescale })` does, and it makes the same image (tested).
 *
 * node --conditions=kiln-source --import tsx examples/src/cfg-negative-prompt.ts [model-folder]
 */
import { writeFile } from 'node:fs/promises';
import * as k from '@kiln/tensor-core';
import { ClassifierFreeGuidance, guidedStep } from '@kiln/guidance';
import { encodePng, toRgba } from '@kiln/pipeline';
import type { StableDiffusionPipeline } from '@kiln/pipeline';
import { schedulerFromConfig } from '@kiln/scheduler';
import { decodeLatents, imageSize, initialLatents, loadPipeline } from './model.js';
import { isMain, pickBackend } from './setup.js';

export interface GuidedOptions {
  prompt: string;
  negativePrompt: string;
  guidanceScale: number;
  /** Guidance rescale φ (Lin et al. 2023), 0 for none. */
  guidanceRescale: number;
  /** A scheduler name or alias (`'ddim'`, `'euler_a'`, …), made from the model's config. */
  scheduler: string;
  steps: number;
  seed: number;
  size: number;
}

/** Images [1, 3, size, size] in [0, 1], guided away from `negativePrompt`. */
export function generateWithNegativePrompt(pipe: StableDiffusionPipeline, o: GuidedOptions): k.Tensor {
  const cfg = new ClassifierFreeGuidance({ guidanceScale: o.guidanceScale, guidanceRescale: o.guidanceRescale });
  const scheduler = schedulerFromConfig(pipe.scheduler.toJSON(), { className: o.scheduler });
  scheduler.setTimesteps(o.steps);
  const context = k.tidy(() => {
    const cond = pipe.encodePrompt([o.prompt]);
    // Off (scale ≤ 1): one forward per step on the prompt alone; the negative prompt is not used.
    return cfg.active ? cfg.conditioning(cond, pipe.encodePrompt([o.negativePrompt])) : cond;
  });
  const generator = new k.Generator(o.seed);
  let latents = initialLatents(pipe, o.size, scheduler.initNoiseSigma, generator);
  const unet = (x: k.Tensor, t: number, c: k.Tensor) => pipe.unet.forward(x, t, c).sample;
  scheduler.timesteps.forEach((t, i) => {
    const next = k.noGrad(() => guidedStep(scheduler, cfg, unet, latents, t, i, context, { generator }));
    latents.dispose();
    latents = next;
  });
  context.dispose();
  return decodeLatents(pipe, latents);
}

if (isMain(import.meta.url)) {
  console.log(`backend: ${await pickBackend()}`);
  const pipe = await loadPipeline(process.argv[2]);
  const size = imageSize(pipe);
  const common = { prompt: 'a cabin in a snowy forest', guidanceRescale: 0, scheduler: 'euler_a', steps: 25, seed: 3, size };
  for (const [name, negativePrompt, guidanceScale] of [
    ['no-negative', '', 7.5],
    ['negative', 'blurry, low quality, trees', 7.5],
    ['negative-strong', 'blurry, low quality, trees', 12],
  ] as const) {
    const images = generateWithNegativePrompt(pipe, { ...common, negativePrompt, guidanceScale });
    const [rgba] = await toRgba(images);
    images.dispose();
    await writeFile(`cfg-${name}.png`, encodePng(rgba));
    console.log(`cfg-${name}.png: guidance ${guidanceScale}, negative prompt ${JSON.stringify(negativePrompt)}`);
  }
  pipe.dispose();
}
