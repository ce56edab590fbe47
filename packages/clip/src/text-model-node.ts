// Node-only file access for CLIPTextModel (loaded by dynamic import from fromPretrained/savePretrained),
// through nn's one model-folder I/O: config.json validated, weights read tensor by tensor into a
// model built without initialisation, sharded indexes path-checked, files written atomically.
import type * as k from '@kiln/tensor-core';
import { WEIGHTS_NAMES, loadPretrained, savePretrained } from '@kiln/nn/node';
import { parseCLIPTextConfig } from './text-config.js';
import type { CLIPTextConfig } from './text-config.js';
import type { CLIPTextModel } from './text-model.js';

/** Where and as what {@link readTextModelFolder} loads. */
export interface TextModelLoadOptions {
  subfolder?: string;
  variant?: string;
  dtype?: k.DType;
}

/** transformers drops the legacy `position_ids` buffer that older checkpoints carry; so do we. */
const IGNORED = ['text_model.embeddings.position_ids'];

export async function readTextModelFolder(
  dir: string,
  options: TextModelLoadOptions,
  build: (config: CLIPTextConfig) => CLIPTextModel,
): Promise<CLIPTextModel> {
  const { model } = await loadPretrained(dir, {
    subfolder: options.subfolder,
    variant: options.variant,
    weightsName: WEIGHTS_NAMES.transformers,
    config: (raw, file) => parseCLIPTextConfig(raw, file),
    build,
    ignoreUnexpected: IGNORED,
  });
  return model;
}

export async function writeTextModelFolder(
  dir: string,
  config: object,
  weights: Record<string, k.Tensor>,
  variant?: string,
): Promise<void> {
  await savePretrained(dir, { config, weights, weightsName: WEIGHTS_NAMES.transformers, variant });
}
