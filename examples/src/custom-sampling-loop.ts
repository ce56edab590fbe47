/**
 * Text to image with the sampling loop written out by hand, the way diffusers' pipeline does it:
 * prompt embeddings from the CLIP text encoder, seeded initial noise, then per timestep one
 * batched UNet forward over [unconditional, conditional], classifier-free guidance as plain tensor
 * arithmetic, and an Euler step; the VAE decodes the result. With the same seed it makes the same
 * image as `pipe.txt2img({ scheduler: 'euler' })` (tested), so this is the place to start changing
 * the loop (a different guidance rule, a callback that edits latents, …).
 *
 * node --conditions=kiln-source --import tsx examples/src/custom-sampling-loop.ts [model-folder]
 */
import { writeFile } from 'node:fs/promises';
import * as k from '@kiln/tensor-core';
import { encodePng, toRgba } from '@kiln/pipeline';
import type { StableDiffusionPipeline } from '@kiln/pipeline';
import { EulerDiscreteScheduler } from '@kiln/scheduler';
import { decodeLatents, imageSize, initialLatents, loadPipeline } from './model.js';
import { isMain, pickBackend } from './setup.js';

export interface SampleOptions {
  prompt: string;
  seed: number;
  steps: number;
  guidanceScale: number;
  /** Square image side in pixels (a multiple of the VAE's scale factor). */
  size: number;
}

/** Images [1, 3, size, size] in [0, 1] from a hand-written Euler + CFG loop. */
export function sampleByHand(pipe: StableDiffusionPipeline, o: SampleOptions): k.Tensor {
  const scheduler = EulerDiscreteScheduler.fromConfig(pipe.scheduler.toJSON());
  scheduler.setTimesteps(o.steps);
  // Unconditional (empty prompt) first, as diffusers orders the batch: [2, 77, D].
  const context = k.tidy(() => k.cat([pipe.encodePrompt(['']), pipe.encodePrompt([o.prompt])], 0));
  const generator = new k.Generator(o.seed);
  let latents = initialLatents(pipe, o.size, scheduler.initNoiseSigma, generator);
  for (const t of scheduler.timesteps) {
    // Each step in its own tidy: only the new latents survive it, so memory stays flat.
    const next = k.noGrad(() =>
      k.tidy(() => {
        const input = scheduler.scaleModelInput(k.cat([latents, latents], 0), t);
        const [uncond, cond] = pipe.unet.forward(input, t, context).sample.chunk(2, 0);
        const eps = uncond.add(cond.sub(uncond).mul(o.guidanceScale));
        return scheduler.step(eps, t, latents, { generator }).prevSample;
      }),
    );
    latents.dispose();
    latents = next;
  }
  context.dispose();
  return decodeLatents(pipe, latents);
}

if (isMain(import.meta.url)) {
  console.log(`backend: ${await pickBackend()}`);
  const pipe = await loadPipeline(process.argv[2]);
  const images = sampleByHand(pipe, { prompt: 'a red fox in the snow', seed: 42, steps: 20, guidanceScale: 7.5, size: imageSize(pipe) });
  const [rgba] = await toRgba(images);
  await writeFile('custom-loop.png', encodePng(rgba));
  console.log(`wrote custom-loop.png (${rgba.width}×${rgba.height})`);
  images.dispose();
  pipe.dispose();
}
