import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { saveSafetensors } from '@kiln/nn/node';
import { LDM_TEXT_ENCODER_PREFIX, PipelineError, StableDiffusionPipeline } from '@kiln/pipeline';
import { TINY_TEXT_CONFIG, TINY_UNET_CONFIG, TINY_VAE_CONFIG } from '@kiln/pipeline/testing';
import { LDM_UNET_PREFIX, ldmUNetKey } from '@kiln/unet';
import { LDM_VAE_PREFIX, ldmVAEKey } from '@kiln/vae';
import { relDiff, tinyModelFolder } from './helpers.js';

/**
 * An SD 1.x single-file checkpoint (original LDM key layout) made from the tiny pipeline with the
 * unet and vae packages' LDM key maps loads into the same pipeline: the same image as the folder.
 */
describe('StableDiffusionPipeline.fromSingleFile', () => {
  let pipe: StableDiffusionPipeline;
  let file: string;
  const configs = { unet: TINY_UNET_CONFIG, vae: TINY_VAE_CONFIG, textEncoder: TINY_TEXT_CONFIG };
  beforeAll(async () => {
    await k.useBackend('wasm');
    pipe = await StableDiffusionPipeline.fromPretrained(await tinyModelFolder());
    const tensors: Record<string, k.Tensor> = {};
    for (const [key, t] of Object.entries(pipe.unet.stateDict())) tensors[LDM_UNET_PREFIX + ldmUNetKey(key, pipe.unet.config)!] = t;
    for (const [key, t] of Object.entries(pipe.vae.stateDict())) {
      const ldm = ldmVAEKey(key, t.shape, pipe.vae.config)!;
      tensors[LDM_VAE_PREFIX + ldm.key] = ldm.shape ? t.reshape([...ldm.shape]) : t;
    }
    for (const [key, t] of Object.entries(pipe.textEncoder.stateDict())) tensors[LDM_TEXT_ENCODER_PREFIX + key] = t;
    file = join(mkdtempSync(join(tmpdir(), 'kiln-single-')), 'tiny-sd.safetensors');
    await saveSafetensors(file, tensors, { format: 'pt' });
  }, 120_000);

  it('loads text encoder, UNet and VAE from one file and makes the same image as the folder', async () => {
    const single = await StableDiffusionPipeline.fromSingleFile(file, { configs });
    expect(single.scheduler.className).toBe('PNDMScheduler');
    const opts = { prompt: 'a fox', seed: 4, numInferenceSteps: 3, width: 16, height: 16 };
    const [a, b] = [await single.txt2img(opts), await pipe.txt2img(opts)];
    expect(await relDiff(a.images, b.images)).toBe(0);
    single.dispose();
  }, 60_000);

  it('refuses a .ckpt, and names what a checkpoint lacks', async () => {
    await expect(StableDiffusionPipeline.fromPretrained('model.ckpt')).rejects.toThrow(/not a folder or a Hub model id/);
    await expect(StableDiffusionPipeline.fromSingleFile('model.ckpt')).rejects.toThrow(/\.safetensors only/);
    await expect(StableDiffusionPipeline.fromSingleFile('model.ckpt')).rejects.toBeInstanceOf(PipelineError);
    const before = k.memory().liveTensors;
    // SD 1.5's configs do not fit the tiny checkpoint: the error lists mis-shaped keys, nothing is left loaded.
    await expect(StableDiffusionPipeline.fromSingleFile(file)).rejects.toThrow(/text_model\.embeddings\.token_embedding\.weight/);
    expect(k.memory().liveTensors).toBe(before);
  }, 60_000);
});
