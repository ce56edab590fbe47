import type * as k from '@kiln/tensor-core';
import { SafetensorsError, loadWeights, openSafetensorsBlob, serializeSafetensors } from '@kiln/nn';
import type { LoadWeightsOptions, Module, SafetensorsBlob, TensorMap } from '@kiln/nn';
import { CLIPTextModel } from '@kiln/clip';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import type { TrainerStorage } from './storage.js';

/** Writes a safetensors file through the storage (streamed where the storage can, else built in memory). */
export async function writeTensors(
  storage: TrainerStorage,
  path: string,
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  if (storage.writeTensors) await storage.writeTensors(path, tensors, metadata);
  else await storage.write(path, await serializeSafetensors(tensors, metadata));
}

/** Opens a safetensors file of the storage; tensors are read one at a time from its Blob. */
export async function openTensors(storage: TrainerStorage, path: string): Promise<SafetensorsBlob> {
  return openSafetensorsBlob(await storage.blob(path), { source: path });
}

/** Every tensor of a safetensors file (the caller disposes them). */
export async function loadTensors(storage: TrainerStorage, path: string): Promise<Record<string, k.Tensor>> {
  const file = await openTensors(storage, path);
  const out: Record<string, k.Tensor> = {};
  try {
    for (const name of file.keys()) out[name] = await file.tensor(name);
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  }
  return out;
}

/** The file names of a model folder, as diffusers and transformers write them. */
const WEIGHTS = ['diffusion_pytorch_model', 'model'];

/** `name[.variant].safetensors`. */
const weightsFile = (name: string, variant?: string) => (variant ? `${name}.${variant}.safetensors` : `${name}.safetensors`);

/** What `savePretrained` of a Kiln model writes as `config.json`, and the weights' base name. */
export function modelFolderOf(m: Module): { config: object; weightsName: string } {
  if (m instanceof UNet2DConditionModel)
    return { config: { _class_name: 'UNet2DConditionModel', _diffusers_version: '0.31.0', ...m.config }, weightsName: WEIGHTS[0] };
  if (m instanceof AutoencoderKL)
    return { config: { _class_name: 'AutoencoderKL', _diffusers_version: '0.31.0', ...m.config }, weightsName: WEIGHTS[0] };
  if (m instanceof CLIPTextModel)
    return { config: { ...m.config, architectures: ['CLIPTextModel'], model_type: 'clip_text_model' }, weightsName: WEIGHTS[1] };
  throw new TypeError(`saveModelFolder: ${m.constructor.name} is not a UNet2DConditionModel, AutoencoderKL or CLIPTextModel`);
}

/**
 * Writes a model folder as the model's `savePretrained` does (weights, then `config.json`, each
 * atomically), through the storage.
 */
export async function saveModelFolder(storage: TrainerStorage, dir: string, m: Module): Promise<void> {
  const { config, weightsName } = modelFolderOf(m);
  await writeTensors(storage, storage.join(dir, weightsFile(weightsName)), m.stateDict(), { format: 'pt' });
  await storage.write(storage.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

/** Loads a model folder's weights (`diffusion_pytorch_model` or `model`, optionally a variant) into `m`. */
export async function loadModelWeights(
  storage: TrainerStorage,
  dir: string,
  m: Module,
  options: Omit<LoadWeightsOptions, 'prefix'> & { variant?: string } = {},
): Promise<void> {
  const candidates = WEIGHTS.map((n) => weightsFile(n, options.variant));
  for (const name of candidates) {
    const path = storage.join(dir, name);
    if ((await storage.kind(path)) === 'file') {
      await loadWeights(m, await openTensors(storage, path), options);
      return;
    }
  }
  throw new SafetensorsError('not_found', `no weights file in this folder; looked for ${candidates.join(', ')}`, dir);
}
