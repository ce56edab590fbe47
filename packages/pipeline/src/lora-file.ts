// Node only: reached from StableDiffusionPipeline.loadLoraWeights by dynamic import, so browser
// bundles never execute it.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as k from '@kiln/tensor-core';
import { kohyaNameMap, parseLoraStateDict } from '@kiln/nn';
import type { LoraWeights } from '@kiln/nn';
import { openSafetensors } from '@kiln/nn/node';
import { PipelineError } from './errors.js';
import type { LoraHost } from './lora.js';

/** diffusers' `LORA_WEIGHT_NAME_SAFE`: the file `save_lora_weights` writes into a folder. */
export const LORA_WEIGHT_NAME = 'pytorch_lora_weights.safetensors';

/**
 * Reads a LoRA file (or `weightName` inside a folder, as diffusers resolves one) in either layout,
 * resolving kohya names against the pipeline's own module paths. `release` frees every tensor read.
 */
export async function readPipelineLora(
  source: string,
  host: LoraHost,
  weightName = LORA_WEIGHT_NAME,
): Promise<{ file: string; lora: LoraWeights; release: () => void }> {
  const info = await stat(source).catch(() => null);
  if (!info) throw new PipelineError(`loadLoraWeights: ${source} does not exist`);
  const file = info.isDirectory() ? join(source, weightName) : source;
  if (info.isDirectory() && !(await stat(file).catch(() => null))?.isFile())
    throw new PipelineError(`loadLoraWeights: ${source} is a folder without ${weightName} (pass weightName to pick another file)`);
  const reader = await openSafetensors(file);
  const tensors = new Map<string, k.Tensor>();
  const release = () => {
    for (const t of tensors.values()) if (!t.isDisposed) t.dispose();
  };
  try {
    for (const name of reader.keys()) tensors.set(name, await reader.tensor(name));
    const lora = await parseLoraStateDict(tensors, reader.metadata, { file, known: kohyaNameMap(host) });
    return { file, lora, release };
  } catch (e) {
    release();
    throw e;
  } finally {
    await reader.close();
  }
}
