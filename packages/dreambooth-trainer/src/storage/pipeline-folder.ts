import type * as k from '@kiln/tensor-core';
import { CLIPTextModel, CLIPTokenizer, parseCLIPTextConfig } from '@kiln/clip';
import type { HuggingFaceTokenizerFiles } from '@kiln/clip';
import { ConfigError, skipInit } from '@kiln/nn';
import type { Module } from '@kiln/nn';
import { ModelIndexSchema, StableDiffusionPipeline, modelIndexFor } from '@kiln/pipeline';
import type { StableDiffusionComponents } from '@kiln/pipeline';
import { parseSchedulerConfigJson, schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel, parseUNetConfig } from '@kiln/unet';
import { AutoencoderKL, parseVAEConfig } from '@kiln/vae';
import { loadModelWeights, saveModelFolder } from './tensor-files.js';
import { errorCode, readText } from './storage.js';
import type { TrainerStorage } from './storage.js';

/** A JSON file of the storage; unreadable or invalid JSON is a ConfigError naming it. */
async function readJson(storage: TrainerStorage, path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readText(storage, path);
  } catch (e) {
    throw new ConfigError(path, [errorCode(e) === 'ENOENT' ? 'not found' : `cannot be read (${errorCode(e)})`], { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, [`not valid JSON: ${(e as Error).message}`], { cause: e });
  }
}

/** A tokenizer folder of the storage (`vocab.json`, `merges.txt`, and the optional files when present). */
export async function loadTokenizerFolder(storage: TrainerStorage, dir: string): Promise<CLIPTokenizer> {
  const names = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'] as const;
  const files: Partial<Record<(typeof names)[number], string>> = {};
  for (const [i, name] of names.entries()) {
    const path = storage.join(dir, name);
    if (i >= 2 && (await storage.kind(path)) !== 'file') continue;
    files[name] = await readText(storage, path);
  }
  return CLIPTokenizer.fromHuggingFaceFiles(files as HuggingFaceTokenizerFiles, {
    names: Object.fromEntries(names.map((n) => [n, storage.join(dir, n)])),
  });
}

/**
 * Loads a diffusers Stable Diffusion 1.x folder from the storage, as `StableDiffusionPipeline.fromPretrained`
 * loads one from disk: `model_index.json`, the scheduler, the tokenizer and the three models, built
 * without initialisation and filled tensor by tensor (converted to `dtype`). On an error, what was
 * loaded is freed.
 *
 * @example
 * ```ts
 * const pipe = await loadPipelineFolder(await opfsStorage(), 'models/tiny-sd');
 * ```
 */
export async function loadPipelineFolder(
  storage: TrainerStorage,
  dir: string,
  options: { dtype?: k.DType; variant?: string } = {},
): Promise<StableDiffusionPipeline> {
  const indexFile = storage.join(dir, 'model_index.json');
  const index = ModelIndexSchema.safeParse(await readJson(storage, indexFile));
  if (!index.success)
    throw new ConfigError(
      indexFile,
      index.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  const schedulerFile = storage.join(dir, 'scheduler', 'scheduler_config.json');
  const schedulerConfig = parseSchedulerConfigJson(await readText(storage, schedulerFile), schedulerFile);
  const className = typeof schedulerConfig._class_name === 'string' ? schedulerConfig._class_name : index.data.scheduler[1];
  const scheduler = schedulerFromConfig(schedulerConfig, { className, file: schedulerFile });
  const tokenizer = await loadTokenizerFolder(storage, storage.join(dir, 'tokenizer'));
  const config = async (sub: string) => {
    const file = storage.join(dir, sub, 'config.json');
    return { raw: await readJson(storage, file), file };
  };
  const o = { dtype: options.dtype };
  const loaded: Module[] = [];
  const load = async <M extends Module>(sub: string, build: (raw: unknown, file: string) => M, ignoreUnexpected: string[] = []) => {
    const { raw, file } = await config(sub);
    const m = skipInit(() => build(raw, file));
    loaded.push(m);
    await loadModelWeights(storage, storage.join(dir, sub), m, { variant: options.variant, ignoreUnexpected });
    return m;
  };
  try {
    // transformers drops the legacy position_ids buffer older checkpoints carry; so does Kiln.
    const textEncoder = await load('text_encoder', (raw, f) => new CLIPTextModel(parseCLIPTextConfig(raw, f), o), [
      'text_model.embeddings.position_ids',
    ]);
    const unet = await load('unet', (raw, f) => new UNet2DConditionModel(parseUNetConfig(raw, f), o));
    const vae = await load('vae', (raw, f) => new AutoencoderKL(parseVAEConfig(raw, f), o));
    return new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler });
  } catch (e) {
    for (const m of loaded) m.dispose();
    throw e;
  }
}

/**
 * Writes a pipeline as a diffusers folder through the storage, as `StableDiffusionPipeline.savePretrained`
 * does: each component in its subfolder, `model_index.json` last (a reader never sees an index
 * pointing at missing parts).
 *
 * @example
 * ```ts
 * await savePipelineFolder(memoryStorage(), 'out/model', pipe);
 * ```
 */
export async function savePipelineFolder(storage: TrainerStorage, dir: string, p: StableDiffusionComponents): Promise<void> {
  for (const [name, text] of Object.entries(p.tokenizer.toHuggingFaceFiles()))
    if (typeof text === 'string') await storage.write(storage.join(dir, 'tokenizer', name), text);
  await saveModelFolder(storage, storage.join(dir, 'text_encoder'), p.textEncoder);
  await saveModelFolder(storage, storage.join(dir, 'unet'), p.unet);
  await saveModelFolder(storage, storage.join(dir, 'vae'), p.vae);
  const scheduler = { ...p.scheduler.toJSON(), _diffusers_version: '0.31.0' };
  await storage.write(storage.join(dir, 'scheduler', 'scheduler_config.json'), `${JSON.stringify(scheduler, null, 2)}\n`);
  await storage.write(storage.join(dir, 'model_index.json'), `${JSON.stringify(modelIndexFor(p.scheduler.className), null, 2)}\n`);
}
