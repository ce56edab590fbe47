/**
 * The model the diffusion examples run on: the diffusers folder given as the first argument (a
 * Stable Diffusion 1.x model such as `stable-diffusion-v1-5`), else the tiny seeded model from
 * `@kiln/pipeline/testing`, written once to a temporary folder, so every example runs in seconds
 * and without a download.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { writeTinyModel } from '@kiln/pipeline/testing';

let tiny: Promise<string> | undefined;

/** A folder with the tiny model (written on first call, then reused). */
export function tinyModelDir(): Promise<string> {
  tiny ??= (async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'kiln-example-')), 'tiny-sd');
    await writeTinyModel(dir);
    return dir;
  })();
  return tiny;
}

/** Loads the pipeline from `dir`, else from the tiny model. */
export async function loadPipeline(dir?: string): Promise<StableDiffusionPipeline> {
  return StableDiffusionPipeline.fromPretrained(dir ?? (await tinyModelDir()));
}

/** Image size for an example: SD's native size for a real model, 32×32 for the tiny one. */
export function imageSize(pipe: StableDiffusionPipeline): number {
  return (pipe.unet.config.sample_size ?? 64) * pipe.vaeScaleFactor;
}

/**
 * Latents → images [N, 3, H, W] in [0, 1], as the pipeline decodes them: undo the VAE's
 * `scaling_factor`, decode, map [−1, 1] to [0, 1]. Frees `latents`.
 */
export function decodeLatents(pipe: StableDiffusionPipeline, latents: k.Tensor): k.Tensor {
  try {
    return k.noGrad(() => k.tidy(() => pipe.vae.decode(latents.div(pipe.vae.config.scaling_factor)).sample.div(2).add(0.5).clamp(0, 1)));
  } finally {
    latents.dispose();
  }
}

/** Initial noise [1, 4, size/8, size/8] for a square image, from `generator`, scaled by the scheduler's `initNoiseSigma` (as diffusers' `prepare_latents`). */
export function initialLatents(pipe: StableDiffusionPipeline, size: number, initNoiseSigma: number, generator: k.Generator): k.Tensor {
  const side = size / pipe.vaeScaleFactor;
  return k.tidy(() => k.randn([1, pipe.unet.config.in_channels, side, side], { generator }).mul(initNoiseSigma));
}
