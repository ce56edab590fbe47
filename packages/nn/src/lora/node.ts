/** LoRA files on disk (Node only): exported from `@kiln/nn/node`. */
import type * as k from '@kiln/tensor-core';
import { openSafetensors, saveSafetensors } from '../safetensors/node.js';
import { parseLoraStateDict, serializeLoraWeights } from './format.js';
import type { LoraFormat, LoraWeights } from './format.js';
import type { LoraAdapter } from './inject.js';
import type { LoraComponent } from './keys.js';
import { applyLoraWeights, extractLoraWeights, kohyaNameMap } from './model-io.js';
import type { ApplyLoraOptions, LoraModels } from './model-io.js';

/**
 * Reads a LoRA safetensors file in either layout (diffusers/PEFT or kohya/A1111, detected).
 * Pass `models` to resolve kohya names against their exact module paths.
 *
 * @example
 * ```ts
 * const lora = await readLoraFile('pytorch_lora_weights.safetensors');
 * ```
 */
export async function readLoraFile(path: string, options: { models?: LoraModels } = {}): Promise<LoraWeights> {
  const reader = await openSafetensors(path);
  const tensors = new Map<string, k.Tensor>();
  let kept = new Set<k.Tensor>();
  try {
    for (const name of reader.keys()) tensors.set(name, await reader.tensor(name));
    const lora = await parseLoraStateDict(tensors, reader.metadata, {
      file: path,
      known: options.models ? kohyaNameMap(options.models) : undefined,
    });
    kept = new Set([...lora.modules.values()].flatMap((m) => [m.down, m.up]));
    return lora;
  } finally {
    // The returned weights own down/up; scalars read into numbers (alphas) and everything on failure are ours to free.
    for (const t of tensors.values()) if (!kept.has(t) && !t.isDisposed) t.dispose();
    await reader.close();
  }
}

/**
 * Writes adapter `name` of `models` (or a {@link LoraWeights}) as one safetensors file in
 * `format` (default diffusers, the `pytorch_lora_weights.safetensors` layout), atomically.
 *
 * @example
 * ```ts
 * await saveLoraWeights('out/pytorch_lora_weights.safetensors', { unet, text_encoder: te });
 * await saveLoraWeights('out/sks.safetensors', { unet }, { format: 'kohya', metadata: { ss_output_name: 'sks' } });
 * ```
 */
export async function saveLoraWeights(
  path: string,
  source: LoraModels | LoraWeights,
  options: { format?: LoraFormat; name?: string; metadata?: Readonly<Record<string, string>>; foldAlpha?: boolean } = {},
): Promise<void> {
  const lora = isLoraWeights(source)
    ? { ...source, metadata: { ...source.metadata, ...options.metadata } }
    : extractLoraWeights(source, options.name, options.metadata);
  const { tensors, metadata } = serializeLoraWeights(lora, options.format ?? 'diffusers', { foldAlpha: options.foldAlpha });
  await saveSafetensors(path, tensors, metadata);
}

function isLoraWeights(value: unknown): value is LoraWeights {
  return typeof value === 'object' && value !== null && 'modules' in value && (value as LoraWeights).modules instanceof Map;
}

/**
 * Loads a LoRA file of either layout into `models` as adapter `name` with multiplier `scale`
 * (call again with another name to stack files). Nothing is attached if the file does not fit.
 *
 * @example
 * ```ts
 * await loadLoraWeights({ unet, text_encoder: te }, 'sks.safetensors', { scale: 0.8 });
 * await loadLoraWeights({ unet }, 'style.safetensors', { name: 'style', scale: 0.5 });
 * ```
 */
export async function loadLoraWeights(
  models: LoraModels,
  path: string,
  options: ApplyLoraOptions = {},
): Promise<Map<LoraComponent, LoraAdapter>> {
  const lora = await readLoraFile(path, { models });
  return applyLoraWeights(models, lora, { file: path, ...options });
}

/**
 * Rewrites a LoRA file in the other layout (kohya ↔ diffusers), tensors byte for byte.
 *
 * @example
 * ```ts
 * await convertLoraFile('sks_kohya.safetensors', 'pytorch_lora_weights.safetensors', 'diffusers');
 * ```
 */
export async function convertLoraFile(source: string, destination: string, format: LoraFormat): Promise<void> {
  await saveLoraWeights(destination, await readLoraFile(source), { format });
}
