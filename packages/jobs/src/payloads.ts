import { parseTrainerConfig } from '@kiln/dreambooth-trainer';
import type { TrainerConfig } from '@kiln/dreambooth-trainer';
import { GenerationOptionsSchema } from '@kiln/pipeline';
import type { GenerationOptions } from '@kiln/pipeline';
import { z } from 'zod';
import { JobPayloadError } from './errors.js';
import { keySegments } from './storage.js';

/**
 * The kinds of job a pool runs.
 *
 * @example
 * ```ts
 * if (!JOB_TYPES.includes(name as JobType)) throw new Error(`unknown job type ${name}`);
 * ```
 */
export const JOB_TYPES = ['train-dreambooth', 'generate', 'generate-batch'] as const;
/**
 * A kind of job.
 *
 * @example
 * ```ts
 * const type: JobType = 'generate-batch';
 * ```
 */
export type JobType = (typeof JOB_TYPES)[number];

/**
 * The trainer options that name files: each is a storage key, confined to the storage root.
 * (`logging_dir` is a folder inside `output_dir`, checked as a relative key too.)
 *
 * @example
 * ```ts
 * for (const field of TRAINER_PATH_FIELDS) console.log(field, config[field]); // storage keys
 * ```
 */
export const TRAINER_PATH_FIELDS = [
  'pretrained_model_name_or_path',
  'instance_data_dir',
  'class_data_dir',
  'output_dir',
  'tokenizer_name',
  'logging_dir',
] as const satisfies readonly (keyof TrainerConfig)[];

/** The longest user name a payload may carry (it becomes part of Redis keys). */
const user = z
  .string()
  .regex(/^[\w.@-]{1,128}$/, 'letters, digits and . _ @ - only, at most 128')
  .optional();

/** `train-dreambooth`: a run's options, diffusers' names, exactly what `kiln train-dreambooth --config` takes. */
const TrainPayloadSchema = z.strictObject({ user, config: z.record(z.string(), z.unknown()) });
/** LoRAs applied to the model, in order, as `kiln generate --lora FILE[:SCALE]` applies them. */
const loras = z
  .array(z.strictObject({ file: z.string(), scale: z.number().finite().default(1) }))
  .max(16)
  .default([]);
/** `generate`: one request (the fields of a `kiln generate --batch` line) on a model, images into `out`. */
const GeneratePayloadSchema = z.strictObject({
  user,
  model: z.string(),
  loras,
  out: z.string(),
  request: z.record(z.string(), z.unknown()),
});
/** `generate-batch`: many requests on one model (loaded once). */
const GenerateBatchPayloadSchema = z.strictObject({
  user,
  model: z.string(),
  loras,
  out: z.string(),
  requests: z.array(z.record(z.string(), z.unknown())).min(1).max(10_000),
});

/**
 * A validated `train-dreambooth` payload: the trainer's config, its path fields still storage keys.
 *
 * @example
 * ```ts
 * const p = parsePayload('train-dreambooth', data) as TrainPayload;
 * p.config.max_train_steps;
 * ```
 */
export interface TrainPayload {
  type: 'train-dreambooth';
  user?: string;
  config: TrainerConfig;
}
/**
 * A validated `generate` or `generate-batch` payload (one request for `generate`).
 *
 * @example
 * ```ts
 * const p = parsePayload('generate', { model: 'models/sd15', out: 'images/fox', request: { prompt: 'a fox' } }) as GeneratePayload;
 * p.requests[0].steps; // 30
 * ```
 */
export interface GeneratePayload {
  type: 'generate' | 'generate-batch';
  user?: string;
  /** Storage key of a diffusers model folder (or a single-file `.safetensors`). */
  model: string;
  /** Storage keys of LoRA files (or folders) with their scales, applied in order. */
  loras: { file: string; scale: number }[];
  /** Storage key of the folder the PNGs go to. */
  out: string;
  requests: GenerationOptions[];
}
/**
 * Any validated payload.
 *
 * @example
 * ```ts
 * const p: JobPayload = parsePayload(job.name, job.data);
 * if (p.type === 'train-dreambooth') console.log(p.config.output_dir);
 * ```
 */
export type JobPayload = TrainPayload | GeneratePayload;

const issuesOf = (e: z.ZodError, prefix: string) =>
  e.issues.map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.') || '(payload)'}: ${i.message}`).join('; ');

function parseShape<T>(schema: z.ZodType<T>, data: unknown, type: JobType): T {
  const r = schema.safeParse(data);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new JobPayloadError(`${type} payload: ${issuesOf(r.error, '')}`, first?.path.map(String).join('.'));
  }
  return r.data;
}

function parseRequest(data: Record<string, unknown>, field: string): GenerationOptions {
  const r = GenerationOptionsSchema.safeParse(data);
  if (!r.success) throw new JobPayloadError(`generate payload: ${issuesOf(r.error, field)}`, field);
  return r.data;
}

function checkKeys(p: { model: string; out: string; loras: { file: string }[] }): void {
  keySegments(p.model, 'model');
  keySegments(p.out, 'out');
  for (const [i, l] of p.loras.entries()) keySegments(l.file, `loras.${i}.file`);
}

/**
 * Validates a job's payload as a worker (and `submit`) sees it: the shape of the job type, the
 * trainer's config through `parseTrainerConfig` (its `TrainerConfigError` names the
 * option), generation requests through the CLI's schema, and every path field as a storage key
 * (a {@link StoragePathError} for `../` or absolute paths). Nothing here touches the disk.
 *
 * A training payload must name its `output_dir` (two jobs writing one folder would mix their
 * checkpoints); `resume_from_checkpoint` may only be `latest` (the worker resumes by itself).
 *
 * @example
 * ```ts
 * const p = parsePayload('train-dreambooth', {
 *   config: { pretrained_model_name_or_path: 'models/sd15', instance_data_dir: 'subjects/dog', instance_prompt: 'a photo of sks dog', output_dir: 'runs/dog' },
 * });
 * parsePayload('generate', { model: 'models/sd15', out: '../x', request: { prompt: 'a fox' } }); // throws StoragePathError
 * ```
 */
export function parsePayload(type: string, data: unknown): JobPayload {
  if (!(JOB_TYPES as readonly string[]).includes(type))
    throw new JobPayloadError(`unknown job type ${JSON.stringify(type)}; one of ${JOB_TYPES.join(', ')}`);
  const t = type as JobType;
  if (t === 'train-dreambooth') {
    const p = parseShape(TrainPayloadSchema, data, t);
    if (p.config.output_dir === undefined)
      throw new JobPayloadError(
        'train-dreambooth payload: config.output_dir is required (a storage key of its own per job)',
        'config.output_dir',
      );
    const resume = p.config.resume_from_checkpoint;
    if (resume !== undefined && resume !== null && resume !== 'latest')
      throw new JobPayloadError(
        `train-dreambooth payload: config.resume_from_checkpoint = ${JSON.stringify(resume)}: only "latest" (of output_dir) is accepted in a job`,
        'config.resume_from_checkpoint',
      );
    const config = parseTrainerConfig(p.config, 'config');
    for (const field of TRAINER_PATH_FIELDS) {
      const value = config[field];
      if (value !== null) keySegments(value, `config.${field}`);
    }
    return { type: t, user: p.user, config };
  }
  if (t === 'generate') {
    const p = parseShape(GeneratePayloadSchema, data, t);
    checkKeys(p);
    return { type: t, user: p.user, model: p.model, loras: p.loras, out: p.out, requests: [parseRequest(p.request, 'request')] };
  }
  const p = parseShape(GenerateBatchPayloadSchema, data, t);
  checkKeys(p);
  return {
    type: t,
    user: p.user,
    model: p.model,
    loras: p.loras,
    out: p.out,
    requests: p.requests.map((r, i) => parseRequest(r, `requests.${i}`)),
  };
}
