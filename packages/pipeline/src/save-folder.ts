// Node only: reached from StableDiffusionPipeline.savePretrained by dynamic import.
import { join } from 'node:path';
import { writeFileAtomic } from '@kiln/nn/node';
import { modelIndexFor } from './model-index.js';
import type { StableDiffusionComponents } from './pipeline.js';

/** Writes each component into its diffusers subfolder, `model_index.json` last (a reader never sees an index pointing at missing parts). */
export async function savePipelineFolder(dir: string, p: StableDiffusionComponents, options: { variant?: string }): Promise<void> {
  await p.tokenizer.savePretrained(join(dir, 'tokenizer'));
  await p.textEncoder.savePretrained(join(dir, 'text_encoder'), options);
  await p.unet.savePretrained(join(dir, 'unet'), options);
  await p.vae.savePretrained(join(dir, 'vae'), options);
  const scheduler = { ...p.scheduler.toJSON(), _diffusers_version: '0.31.0' };
  await writeFileAtomic(join(dir, 'scheduler', 'scheduler_config.json'), `${JSON.stringify(scheduler, null, 2)}\n`);
  await writeFileAtomic(join(dir, 'model_index.json'), `${JSON.stringify(modelIndexFor(p.scheduler.className), null, 2)}\n`);
}
