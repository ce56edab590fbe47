import type * as k from '@kiln/tensor-core';
import type { CLIPTokenizer } from '@kiln/clip';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { DDPMScheduler } from '@kiln/scheduler';
import { generateClassImages } from './class-images.js';
import type { TrainerConfig } from './config.js';
import { DreamBoothDataset } from './dataset.js';
import { TrainerConfigError } from './errors.js';
import { listImages, loadImageFolder } from './image-folder.js';
import { halfDTypeOf } from './mixed-precision.js';
import type { TrainerEnvironment } from './environment.js';
import type { TrainerStorage } from './storage/storage.js';

/** Everything a run works on, loaded and checked before anything is written to output_dir. */
export interface Session {
  config: TrainerConfig;
  /** Where the run reads and writes. */
  storage: TrainerStorage;
  /** Loads the base model again (a new pipeline, in `dtype`). */
  loadBase: (dtype?: k.DType) => Promise<StableDiffusionPipeline>;
  pipe: StableDiffusionPipeline;
  trainScheduler: DDPMScheduler;
  dataset: DreamBoothDataset;
  seed: number;
  predictionType: 'epsilon' | 'v_prediction';
  maxLength: number;
}

/** Refuses to write into an output_dir that has files, unless overwriting or resuming is asked for. */
export async function checkOutputDir(
  c: Pick<TrainerConfig, 'output_dir' | 'overwrite_output_dir' | 'resume_from_checkpoint'>,
  storage: TrainerStorage,
): Promise<void> {
  const entries = await storage.list(c.output_dir).catch(() => [] as string[]);
  if (entries.length > 0 && !c.overwrite_output_dir && c.resume_from_checkpoint === null) {
    throw new TrainerConfigError(
      `output_dir = ${JSON.stringify(c.output_dir)} already has files (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); pass --overwrite_output_dir to write into it, or --resume_from_checkpoint latest`,
      { field: 'output_dir', value: c.output_dir },
    );
  }
}

/**
 * Loads the data and the base model, generates missing class images, and builds the training
 * noise schedule (the model's scheduler config as a DDPM, with `prediction_type` and zero
 * terminal SNR applied). Bad data fails here, before output_dir is touched.
 */
export async function openSession(c: TrainerConfig, env: TrainerEnvironment, log: (line: string) => void): Promise<Session> {
  const storage = env.storage;
  await checkOutputDir(c, storage);
  const minSide = Math.max(1, Math.ceil(c.resolution / 4));
  const instances = await loadImageFolder(c.instance_data_dir, {
    prompt: c.instance_prompt,
    captionExtension: c.caption_extension,
    minSide,
    what: 'instance',
    storage,
  });
  const seed = c.seed ?? Math.floor(Math.random() * 2 ** 31);
  const load = (dtype?: k.DType) =>
    env.loadPipeline(c.pretrained_model_name_or_path, {
      variant: c.variant ?? undefined,
      revision: c.revision ?? undefined,
      dtype,
    });
  const withTokenizer = async (pipe: StableDiffusionPipeline) =>
    c.tokenizer_name === null
      ? pipe
      : new StableDiffusionPipeline({
          ...pipe,
          tokenizer: await env.loadTokenizer(c.tokenizer_name),
          scheduler: pipe.scheduler,
        });
  const classImages = (p: StableDiffusionPipeline) =>
    generateClassImages(p, {
      dir: c.class_data_dir!,
      prompt: c.class_prompt!,
      numImages: c.num_class_images,
      batchSize: c.sample_batch_size,
      seed,
      steps: c.class_inference_steps,
      resolution: c.resolution,
      log,
      storage,
    });
  // --prior_generation_precision fp16/bf16: as diffusers, class images come from a pipeline of
  // their own in that dtype, loaded (only when images are missing) and freed before the training one.
  const genDType = halfDTypeOf(c.prior_generation_precision);
  if (c.with_prior_preservation && genDType && (await listImages(c.class_data_dir!, storage).catch(() => [])).length < c.num_class_images) {
    const gen = await load(genDType);
    try {
      await classImages(await withTokenizer(gen));
    } finally {
      gen.dispose();
    }
  }
  const pipe = await load();
  try {
    const p = await withTokenizer(pipe);
    const tokenizer = p.tokenizer;
    let classes = null;
    if (c.with_prior_preservation) {
      if (!genDType) await classImages(p);
      classes = await loadImageFolder(c.class_data_dir!, {
        prompt: c.class_prompt!,
        minSide,
        limit: c.num_class_images,
        what: 'class',
        storage,
      });
    }
    const dataset = new DreamBoothDataset(instances, classes, {
      resolution: c.resolution,
      centerCrop: c.center_crop,
      randomFlip: c.random_flip,
      seed,
    });
    const base = pipe.scheduler.toJSON() as Record<string, unknown>;
    const predictionType = c.prediction_type ?? (base.prediction_type as 'epsilon' | 'v_prediction' | undefined) ?? 'epsilon';
    if (predictionType !== 'epsilon' && predictionType !== 'v_prediction') {
      throw new TrainerConfigError(
        `the base scheduler's prediction_type ${JSON.stringify(predictionType)} cannot be trained; pass --prediction_type epsilon or v_prediction`,
        { field: 'prediction_type' },
      );
    }
    const { _class_name: _ignored, ...rest } = base;
    const trainScheduler = DDPMScheduler.fromConfig({
      ...rest,
      prediction_type: predictionType,
      rescale_betas_zero_snr: c.zero_terminal_snr || rest.rescale_betas_zero_snr === true,
    });
    const maxLength = c.tokenizer_max_length ?? tokenizer.modelMaxLength;
    if (maxLength > p.textEncoder.config.max_position_embeddings) {
      throw new TrainerConfigError(
        `tokenizer_max_length = ${maxLength} is above the text encoder's max_position_embeddings (${p.textEncoder.config.max_position_embeddings})`,
        { field: 'tokenizer_max_length', value: maxLength },
      );
    }
    await storage.mkdir(c.output_dir);
    return { config: c, storage, loadBase: load, pipe: p, trainScheduler, dataset, seed, predictionType, maxLength };
  } catch (e) {
    pipe.dispose();
    throw e;
  }
}

/** Token ids (padded and truncated to `maxLength`) and attention masks of prompts. */
export function tokenize(tokenizer: CLIPTokenizer, prompts: readonly string[], maxLength: number): { ids: number[][]; mask: number[][] } {
  const ids = prompts.map((p) => tokenizer.encode(p, { maxLength }));
  const mask = prompts.map((p) => {
    const n = Math.min(tokenizer.encode(p, { padding: false, maxLength }).length, maxLength);
    return Array.from({ length: maxLength }, (_, i) => (i < n ? 1 : 0));
  });
  return { ids, mask };
}

/** diffusers' `encode_prompt` of the training script: the last hidden state, optionally with the attention mask. */
export function encodeText(s: Session, prompts: readonly string[]): k.Tensor {
  const { ids, mask } = tokenize(s.pipe.tokenizer, prompts, s.maxLength);
  return s.pipe.textEncoder.forward(ids, s.config.text_encoder_use_attention_mask ? { attentionMask: mask } : {}).lastHiddenState;
}
