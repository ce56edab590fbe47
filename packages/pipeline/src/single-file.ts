// Node only: reached from StableDiffusionPipeline.fromSingleFile by dynamic import.
import type * as k from '@kiln/tensor-core';
import { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import type { CLIPTextConfigInput } from '@kiln/clip';
import { loadWeights, prefixedSource, renamedSource, skipInit } from '@kiln/nn';
import { openSafetensors } from '@kiln/nn/node';
import { schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import type { UNetConfigInput } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import type { VAEConfigInput } from '@kiln/vae';
import { PipelineError } from './errors.js';
import type { StableDiffusionComponents } from './pipeline.js';
import { LDM_TEXT_ENCODER_PREFIX, SD15_SCHEDULER_CONFIG } from './sd15.js';

/** Options of {@link StableDiffusionPipeline.fromSingleFile}. */
export interface SingleFileOptions {
  /** Parameter dtype of the three models (default float32). */
  dtype?: k.DType;
  /** Configs of the parts, for checkpoints that are not SD 1.x-sized (default: SD 1.5's, the package defaults). */
  configs?: { unet?: UNetConfigInput; vae?: VAEConfigInput; textEncoder?: CLIPTextConfigInput; scheduler?: Record<string, unknown> };
}

/** The CLIP text encoder of a single file: `cond_stage_model.transformer.text_model.*` (or the older names without `text_model.`). */
async function readTextEncoder(path: string, config: CLIPTextConfigInput | undefined, dtype: k.DType | undefined): Promise<CLIPTextModel> {
  await using file = await openSafetensors(path);
  let source = prefixedSource(file, LDM_TEXT_ENCODER_PREFIX);
  if (!source.has('text_model.final_layer_norm.weight') && source.has('final_layer_norm.weight'))
    source = renamedSource(source, (key) => `text_model.${key}`);
  const model = skipInit(() => new CLIPTextModel(config ?? {}, { dtype }));
  try {
    await loadWeights(model, source, { ignoreUnexpected: ['text_model.embeddings.position_ids'] });
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Reads an SD 1.x single-file checkpoint (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.*`). */
export async function loadSingleFile(path: string, options: SingleFileOptions): Promise<StableDiffusionComponents> {
  if (!path.endsWith('.safetensors'))
    throw new PipelineError(
      `${path}: single-file checkpoints are read from .safetensors only (a .ckpt is a pickle, which Kiln does not execute)`,
    );
  const c = options.configs ?? {};
  const loaded: { dispose(): void }[] = [];
  try {
    const textEncoder = await readTextEncoder(path, c.textEncoder, options.dtype);
    loaded.push(textEncoder);
    const unet = await UNet2DConditionModel.fromSingleFile(path, { config: c.unet, dtype: options.dtype });
    loaded.push(unet);
    const vae = await AutoencoderKL.fromSingleFile(path, { config: c.vae, dtype: options.dtype });
    const tokenizer = await CLIPTokenizer.fromOpenAI();
    const scheduler = schedulerFromConfig(c.scheduler ?? SD15_SCHEDULER_CONFIG);
    return { tokenizer, textEncoder, unet, vae, scheduler };
  } catch (e) {
    for (const m of loaded) m.dispose();
    throw e;
  }
}
