// Node-only: reads the UNet part of an SD 1.x single-file checkpoint (dynamic import from
// UNet2DConditionModel.fromSingleFile).
import { loadWeights, prefixedSource, renamedSource, skipInit } from '@kiln/nn';
import { openSafetensors } from '@kiln/nn/node';
import { LDM_UNET_PREFIX, ldmUNetKey } from './single-file.js';
import type { UNet2DConditionModel } from './unet-2d-condition.js';

/** Builds the model uninitialised and loads `model.diffusion_model.*` under diffusers' names. */
export async function readUNetSingleFile(path: string, build: () => UNet2DConditionModel): Promise<UNet2DConditionModel> {
  await using file = await openSafetensors(path);
  const model = skipInit(build);
  try {
    const toDiffusers = new Map(Object.keys(model.stateDict()).map((key) => [ldmUNetKey(key, model.config)!, key]));
    // A stored key the UNet does not have keeps its LDM name, so the error lists it as unexpected.
    const source = renamedSource(prefixedSource(file, LDM_UNET_PREFIX), (ldm) => toDiffusers.get(ldm) ?? `${LDM_UNET_PREFIX}${ldm}`);
    await loadWeights(model, source);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}
