/**
 * Converting an SD 1.x single-file checkpoint (`v1-5-pruned-emaonly.safetensors`, the original LDM
 * key layout that A1111, ComfyUI and civitai use) into a diffusers folder that
 * `StableDiffusionPipeline.fromPretrained` (Kiln's or diffusers') loads, with no conversion script:
 * `fromSingleFile` maps the keys through the unet and vae packages' LDM key maps, and
 * `savePretrained` writes `model_index.json`, one subfolder per component, each file atomically.
 * `writeSingleFile` goes the other way.
 *
 * node --conditions=kiln-source --import tsx examples/src/single-file-to-diffusers.ts model.safetensors out-folder
 */
import * as k from '@kiln/tensor-core';
import { saveSafetensors } from '@kiln/nn/node';
import { LDM_TEXT_ENCODER_PREFIX, StableDiffusionPipeline } from '@kiln/pipeline';
import type { SingleFileOptions } from '@kiln/pipeline';
import { isMain, pickBackend } from './setup.js';

/** Reads a single-file checkpoint and writes it as a diffusers folder; returns the loaded pipeline. */
export async function convertSingleFile(file: string, outDir: string, options: SingleFileOptions = {}): Promise<StableDiffusionPipeline> {
  const pipe = await StableDiffusionPipeline.fromSingleFile(file, options);
  await pipe.savePretrained(outDir);
  return pipe;
}

/** Writes a pipeline's weights as one SD 1.x single-file checkpoint (LDM key layout, `format: pt` as PyTorch writes it). */
export async function writeSingleFile(pipe: StableDiffusionPipeline, file: string): Promise<void> {
  const tensors = new Map<string, k.Tensor>([...Object.entries(pipe.unet.ldmStateDict()), ...Object.entries(pipe.vae.ldmStateDict())]);
  for (const [key, t] of pipe.textEncoder.namedParameters()) tensors.set(LDM_TEXT_ENCODER_PREFIX + key, t);
  await saveSafetensors(file, tensors, { format: 'pt' });
}

if (isMain(import.meta.url)) {
  const [file, outDir] = process.argv.slice(2);
  if (!file || !outDir) {
    console.error('usage: single-file-to-diffusers.ts <checkpoint.safetensors> <out-folder>');
    process.exit(2);
  }
  console.log(`backend: ${await pickBackend()}`);
  const pipe = await convertSingleFile(file, outDir);
  console.log(`wrote ${outDir} (UNet ${pipe.unet.numParameters().toLocaleString()} parameters, scheduler ${pipe.scheduler.className})`);
  pipe.dispose();
}
