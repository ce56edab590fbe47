// Node-only file access for AutoencoderKL (loaded by dynamic import from fromPretrained), so
// browser bundles never execute it.
import { join } from 'node:path';
import { loadWeights, renamedSource, skipInit } from '@kiln/nn';
import { modelRoot, openWeights, readConfig } from '@kiln/nn/node';
import type { AutoencoderKL, VAEPretrainedOptions } from './autoencoder-kl.js';
import { parseVAEConfig } from './config.js';
import type { VAEConfig } from './config.js';
import { convertLegacyVAEKey } from './legacy-names.js';

/** Reads config and weights of a diffusers VAE folder into a model built (uninitialised) by `build`. */
export async function readVAEFolder(
  dir: string,
  options: VAEPretrainedOptions,
  build: (c: VAEConfig) => AutoencoderKL,
): Promise<AutoencoderKL> {
  const config = await readConfig(join(modelRoot(dir, options.subfolder), 'config.json'), parseVAEConfig);
  await using weights = await openWeights(dir, { subfolder: options.subfolder, variant: options.variant });
  const model = skipInit(() => build(config));
  try {
    await loadWeights(model, renamedSource(weights, convertLegacyVAEKey));
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}
