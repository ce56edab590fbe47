// Node-only: reads the VAE part of an SD 1.x single-file checkpoint (dynamic import from
// AutoencoderKL.fromSingleFile).
import { loadWeights, prefixedSource, renamedSource, skipInit } from '@kiln/nn';
import { openSafetensors } from '@kiln/nn/node';
import type { AutoencoderKL } from './autoencoder-kl.js';
import { LDM_VAE_PREFIX, ldmVAEKey } from './single-file.js';

/** Builds the model uninitialised and loads `first_stage_model.*` under diffusers' names and shapes. */
export async function readVAESingleFile(path: string, build: () => AutoencoderKL): Promise<AutoencoderKL> {
  await using file = await openSafetensors(path);
  const model = skipInit(build);
  try {
    const toDiffusers = new Map<string, string | { key: string; shape: readonly number[] }>();
    for (const [key, t] of Object.entries(model.stateDict())) {
      const ldm = ldmVAEKey(key, t.shape, model.config)!;
      toDiffusers.set(ldm.key, ldm.shape ? { key, shape: t.shape } : key); // LDM's 1×1 convs load into linears
    }
    // A stored key the VAE does not have keeps its LDM name, so the error lists it as unexpected.
    const source = renamedSource(prefixedSource(file, LDM_VAE_PREFIX), (ldm) => toDiffusers.get(ldm) ?? `${LDM_VAE_PREFIX}${ldm}`);
    await loadWeights(model, source);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}
