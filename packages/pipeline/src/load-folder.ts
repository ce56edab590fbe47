// Node only: reached from StableDiffusionPipeline.fromPretrained by dynamic import, so browser
// bundles never execute it.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import { readConfig } from '@kiln/nn/node';
import { parseSchedulerConfigJson, schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import { PipelineError } from './errors.js';
import { downloadPipeline, isHubId } from './hub.js';
import { ModelIndexSchema } from './model-index.js';
import type { PipelineLoadOptions, StableDiffusionComponents } from './pipeline.js';

const isDir = async (p: string) => (await stat(p).catch(() => null))?.isDirectory() ?? false;

/** Reads every component of a diffusers Stable Diffusion folder; on any error, what was loaded is freed. */
export async function loadPipelineFolder(source: string, options: PipelineLoadOptions): Promise<StableDiffusionComponents> {
  let dir = source;
  if (!(await isDir(source))) {
    if (!isHubId(source))
      throw new PipelineError(`${source}: not a folder or a Hub model id (org/name); or a .safetensors single-file checkpoint`);
    dir = await downloadPipeline(source, {
      revision: options.revision,
      variant: options.variant,
      onFile: options.onDownload,
      onProgress: options.onDownloadProgress,
    });
  }
  const index = await readConfig(join(dir, 'model_index.json'), ModelIndexSchema);
  const schedulerFile = join(dir, 'scheduler', 'scheduler_config.json');
  let schedulerText: string;
  try {
    schedulerText = await readFile(schedulerFile, 'utf8');
  } catch (e) {
    throw new PipelineError(`${schedulerFile}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  const schedulerConfig = parseSchedulerConfigJson(schedulerText, schedulerFile);
  const className = typeof schedulerConfig._class_name === 'string' ? schedulerConfig._class_name : index.scheduler[1];
  const scheduler = schedulerFromConfig(schedulerConfig, { className, file: schedulerFile });
  const tokenizer = await CLIPTokenizer.fromPretrained(join(dir, 'tokenizer'));
  const m = { dtype: options.dtype, variant: options.variant };
  const loaded: { dispose(): void }[] = [];
  try {
    const textEncoder = await CLIPTextModel.fromPretrained(dir, { ...m, subfolder: 'text_encoder' });
    loaded.push(textEncoder);
    const unet = await UNet2DConditionModel.fromPretrained(dir, { ...m, subfolder: 'unet' });
    loaded.push(unet);
    const vae = await AutoencoderKL.fromPretrained(dir, { ...m, subfolder: 'vae' });
    if (unet.config.cross_attention_dim !== textEncoder.config.hidden_size) {
      loaded.push(vae);
      throw new PipelineError(
        `${dir}: unet cross_attention_dim ${unet.config.cross_attention_dim} does not match text_encoder hidden_size ${textEncoder.config.hidden_size}`,
      );
    }
    return { tokenizer, textEncoder, unet, vae, scheduler };
  } catch (e) {
    for (const x of loaded) x.dispose();
    throw e;
  }
}
