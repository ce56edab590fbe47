import { z } from 'zod';
import { TrainerConfigError } from './errors.js';
import { nearest } from './nearest.js';

// The options of diffusers' examples/dreambooth/train_dreambooth.py, with its names and defaults,
// plus the kohya extras the issue names (save_single_file, zero_terminal_snr, prediction_type,
// caption_extension, cache_latents, random_flip) and Kiln's own (backend, overwrite_output_dir).
// `null` stands for Python's None wherever diffusers' default is None.

const str = z.string().min(1);
const optStr = str.nullable();
const int = (min: number) => z.number().int().min(min);
const flag = z.boolean();

/**
 * `train_dreambooth_lora.py`'s `--learning_rate` default, which a `--lora` run takes when none is given.
 *
 * @example
 * ```ts
 * parseTrainerConfig({ ...required, lora: true }).learning_rate === LORA_LEARNING_RATE; // 5e-4
 * ```
 */
export const LORA_LEARNING_RATE = 5e-4;
/**
 * `train_dreambooth_lora.py`'s `--output_dir` default, which a `--lora` run takes when none is given.
 *
 * @example
 * ```ts
 * parseTrainerConfig({ ...required, lora: true }).output_dir; // 'lora-dreambooth-model'
 * ```
 */
export const LORA_OUTPUT_DIR = 'lora-dreambooth-model';

/** The zod schema of a DreamBooth run; `parseTrainerConfig` applies it. */
export const TrainerConfigSchema = z
  .object({
    // model and data
    pretrained_model_name_or_path: str,
    revision: optStr.default(null),
    variant: optStr.default(null),
    tokenizer_name: optStr.default(null),
    instance_data_dir: str,
    class_data_dir: optStr.default(null),
    instance_prompt: str,
    class_prompt: optStr.default(null),
    // prior preservation
    with_prior_preservation: flag.default(false),
    prior_loss_weight: z.number().min(0).default(1.0),
    num_class_images: int(0).default(100),
    sample_batch_size: int(1).default(4),
    prior_generation_precision: z.enum(['no', 'fp32', 'fp16', 'bf16']).nullable().default(null),
    class_inference_steps: int(1).default(50),
    // output and data handling
    output_dir: str.default('text-inversion-model'),
    overwrite_output_dir: flag.default(false),
    seed: int(0).nullable().default(null),
    resolution: int(8).default(512),
    center_crop: flag.default(false),
    random_flip: flag.default(false),
    train_text_encoder: flag.default(false),
    text_encoder_lr: z.number().positive().nullable().default(null),
    // LoRA (diffusers' train_dreambooth_lora.py)
    lora: flag.default(false),
    rank: int(1).default(4),
    lora_dropout: z.number().min(0).lt(1).default(0),
    // batching and length
    train_batch_size: int(1).default(4),
    num_train_epochs: int(1).default(1),
    max_train_steps: int(1).nullable().default(null),
    gradient_accumulation_steps: int(1).default(1),
    gradient_checkpointing: flag.default(false),
    // checkpointing
    checkpointing_steps: int(1).default(500),
    checkpoints_total_limit: int(1).nullable().default(null),
    resume_from_checkpoint: optStr.default(null),
    // learning rate
    learning_rate: z.number().positive().default(5e-6),
    scale_lr: flag.default(false),
    lr_scheduler: z
      .enum(['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup'])
      .default('constant'),
    lr_warmup_steps: int(0).default(500),
    lr_num_cycles: int(1).default(1),
    lr_power: z.number().default(1.0),
    // optimizer
    adam_beta1: z.number().min(0).lt(1).default(0.9),
    adam_beta2: z.number().min(0).lt(1).default(0.999),
    adam_weight_decay: z.number().min(0).default(1e-2),
    adam_epsilon: z.number().min(0).default(1e-8),
    max_grad_norm: z.number().min(0).default(1.0),
    // precision and noise
    mixed_precision: z.enum(['no', 'fp16', 'bf16']).nullable().default(null),
    offset_noise: flag.default(false),
    snr_gamma: z.number().positive().nullable().default(null),
    zero_terminal_snr: flag.default(false),
    prediction_type: z.enum(['epsilon', 'v_prediction']).nullable().default(null),
    // text encoder
    pre_compute_text_embeddings: flag.default(false),
    tokenizer_max_length: int(2).nullable().default(null),
    text_encoder_use_attention_mask: flag.default(false),
    skip_save_text_encoder: flag.default(false),
    caption_extension: optStr.default(null),
    cache_latents: flag.default(false),
    save_single_file: flag.default(false),
    // validation
    validation_prompt: optStr.default(null),
    num_validation_images: int(1).default(4),
    validation_steps: int(1).default(100),
    validation_scheduler: z.enum(['DPMSolverMultistepScheduler', 'DDPMScheduler']).default('DPMSolverMultistepScheduler'),
    validation_images: z.array(str).nullable().default(null),
    class_labels_conditioning: optStr.default(null),
    // logging
    report_to: z.enum(['tensorboard', 'jsonl', 'all']).default('tensorboard'),
    logging_dir: str.default('logs'),
    set_grads_to_none: flag.default(false),
    // accepted for compatibility; Kiln does something else (see COMPAT_NOTES)
    use_8bit_adam: flag.default(false),
    enable_xformers_memory_efficient_attention: flag.default(false),
    allow_tf32: flag.default(false),
    local_rank: z.number().int().default(-1),
    dataloader_num_workers: int(0).default(0),
    push_to_hub: flag.default(false),
    hub_token: optStr.default(null),
    hub_model_id: optStr.default(null),
    // Kiln
    backend: z.enum(['wasm', 'cpu', 'webgpu']).default('wasm'),
  })
  .strict();

/** A DreamBooth run's settings, diffusers' argument names (after defaults). */
export type TrainerConfig = z.output<typeof TrainerConfigSchema>;
/** What {@link parseTrainerConfig} accepts: the required fields, anything else optional. */
export type TrainerConfigInput = z.input<typeof TrainerConfigSchema>;
/** Every option name. */
export type OptionName = keyof TrainerConfig;

/** One line per option for `--help` (the compiler checks that every option has one). */
export const OPTION_HELP: Record<OptionName, string> = {
  pretrained_model_name_or_path: 'diffusers folder of the base model (required)',
  revision: 'Hub revision (only for Hub ids, which Kiln cannot download)',
  variant: "weight-file variant of the base model, e.g. 'fp16'",
  tokenizer_name: "a tokenizer folder if not the model's tokenizer/",
  instance_data_dir: 'folder of instance images: PNG, JPEG (required)',
  class_data_dir: 'folder of class images (generated there when too few)',
  instance_prompt: "prompt with the identifier, e.g. 'a photo of sks dog' (required)",
  class_prompt: "prompt of the class, e.g. 'a photo of dog'",
  with_prior_preservation: 'add the prior-preservation loss on class images',
  prior_loss_weight: 'weight λ of the prior-preservation loss',
  num_class_images: 'class images wanted; missing ones are generated with the base model',
  sample_batch_size: 'batch size when generating class images',
  class_inference_steps: 'sampling steps per generated class image (Kiln; diffusers uses the pipeline default, 50)',
  prior_generation_precision: 'precision of class-image generation: fp32 (default), fp16 or bf16 (a half-precision pipeline of its own)',
  output_dir: 'where the trained pipeline, checkpoints and logs go',
  overwrite_output_dir: 'allow writing into an output_dir that already has files',
  seed: 'seed of noise, timesteps, data order and crops (random when unset)',
  resolution: 'images are resized and cropped to this square size',
  center_crop: 'center-crop (default: random crop)',
  random_flip: 'flip images horizontally at random (kohya flip_aug)',
  train_text_encoder: 'train the text encoder too (with --lora: LoRA adapters on its attention)',
  text_encoder_lr: "the text encoder's learning rate (default: --learning_rate), as train_dreambooth_lora.py's",
  lora: 'train LoRA adapters on the attention projections instead of the whole UNet (train_dreambooth_lora.py); writes pytorch_lora_weights.safetensors',
  rank: 'LoRA rank (alpha = rank, as train_dreambooth_lora.py)',
  lora_dropout: "dropout on the LoRA adapters' input",
  train_batch_size: 'instance images per step (doubled by class images with prior preservation)',
  num_train_epochs: 'epochs, when max_train_steps is unset',
  max_train_steps: 'optimizer steps; overrides num_train_epochs',
  gradient_accumulation_steps: 'micro-batches per optimizer step',
  gradient_checkpointing: 'recompute activations in backward to save memory',
  checkpointing_steps: 'save checkpoint-N/ every this many optimizer steps',
  checkpoints_total_limit: 'keep at most this many checkpoints (oldest pruned)',
  resume_from_checkpoint: "a checkpoint folder, or 'latest'",
  learning_rate: `initial learning rate (after warmup; with --lora the default is train_dreambooth_lora.py's, ${LORA_LEARNING_RATE})`,
  scale_lr: 'multiply the lr by gradient_accumulation_steps × train_batch_size',
  lr_scheduler: 'linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup',
  lr_warmup_steps: 'warmup steps of the lr schedule',
  lr_num_cycles: 'hard restarts of cosine_with_restarts',
  lr_power: 'power of the polynomial schedule',
  adam_beta1: 'AdamW β₁',
  adam_beta2: 'AdamW β₂',
  adam_weight_decay: 'AdamW decoupled weight decay',
  adam_epsilon: 'AdamW ε',
  max_grad_norm: 'clip the gradients to this global norm',
  mixed_precision:
    'no, fp16 or bf16: the models compute in half precision, the optimizer keeps float32 master weights (fp16 with dynamic loss scaling); weights are saved in float32',
  offset_noise: 'add 0.1 × per-channel noise (offset noise)',
  snr_gamma: 'min-SNR-γ loss weighting (5.0 is recommended)',
  zero_terminal_snr: 'rescale the noise schedule to zero terminal SNR',
  prediction_type: "train for 'epsilon' or 'v_prediction' (default: the scheduler's)",
  pre_compute_text_embeddings: 'encode the prompts once before training',
  tokenizer_max_length: "token length (default: the tokenizer's, 77)",
  text_encoder_use_attention_mask: 'pass the attention mask to the text encoder',
  skip_save_text_encoder: 'leave text_encoder/ out of the output',
  caption_extension: "e.g. '.txt': a caption file beside an instance image overrides instance_prompt",
  cache_latents: 'encode every image with the VAE once, before training',
  save_single_file: 'also write an SD 1.x single-file .safetensors',
  validation_prompt: 'prompt for validation images',
  num_validation_images: 'validation images per validation',
  validation_steps: 'validate every this many steps',
  validation_scheduler: 'DPMSolverMultistepScheduler or DDPMScheduler',
  validation_images: 'image-conditioned validation (not for SD txt2img; refused)',
  class_labels_conditioning: "'timesteps' class labels (SD 1.x UNets have none; refused)",
  report_to: 'tensorboard, jsonl or all (metrics.jsonl is always written)',
  logging_dir: 'log folder inside output_dir',
  set_grads_to_none: 'free gradients after each step (Kiln always does)',
  use_8bit_adam: 'accepted; Kiln uses its fused f32 AdamW',
  enable_xformers_memory_efficient_attention: 'accepted; Kiln always uses its fused, blocked attention',
  allow_tf32: 'accepted; Kiln has no TF32 mode',
  local_rank: 'accepted; Kiln trains on one device',
  dataloader_num_workers: 'accepted; Kiln decodes images in the main thread',
  push_to_hub: 'accepted; Kiln writes output_dir only, upload it yourself',
  hub_token: 'accepted; never used (no uploads)',
  hub_model_id: 'accepted; never used (no uploads)',
  backend: 'Kiln backend: wasm, cpu or webgpu',
};

/** Options accepted for diffusers compatibility that Kiln replaces: the note printed when one is set. */
export const COMPAT_NOTES: Partial<Record<OptionName, string>> = {
  use_8bit_adam: '--use_8bit_adam: Kiln has no bitsandbytes; it uses its fused float32 AdamW',
  enable_xformers_memory_efficient_attention:
    '--enable_xformers_memory_efficient_attention: Kiln always uses its own fused attention, computed in blocks',
  allow_tf32: '--allow_tf32: Kiln has no TF32 mode; matmuls run in float32',
  local_rank: '--local_rank: Kiln trains on one device; the value is not used',
  dataloader_num_workers: '--dataloader_num_workers: Kiln decodes images once, in the main thread',
  push_to_hub: '--push_to_hub: Kiln does not upload; the model is in output_dir',
  hub_token: '--hub_token: Kiln does not upload; the token is not used',
  hub_model_id: '--hub_model_id: Kiln does not upload; the id is not used',
  set_grads_to_none: '--set_grads_to_none: Kiln always frees gradients after each optimizer step',
};

/** The notes for the compatibility options that `config` sets away from their defaults. */
export function compatNotes(config: TrainerConfig): string[] {
  const defaults = TrainerConfigSchema.shape;
  const notes: string[] = [];
  for (const [name, note] of Object.entries(COMPAT_NOTES) as [OptionName, string][]) {
    const fallback = (defaults[name] as z.ZodType).parse(undefined);
    if (config[name] !== fallback) notes.push(note);
  }
  return notes;
}

/** A LoRA run's own defaults (learning rate, output folder), where the input leaves them out. */
function withLoraDefaults(input: object): object {
  const i = input as Record<string, unknown>;
  if (i.lora !== true) return input;
  return { learning_rate: LORA_LEARNING_RATE, output_dir: LORA_OUTPUT_DIR, ...i };
}

/** Every option's default (`undefined` for the required ones). */
export function optionDefaults(): Record<OptionName, unknown> {
  const out = {} as Record<OptionName, unknown>;
  for (const [name, schema] of Object.entries(TrainerConfigSchema.shape) as [OptionName, z.ZodType][]) {
    const r = schema.safeParse(undefined);
    out[name] = r.success ? r.data : undefined;
  }
  return out;
}

/** Option names, for suggestions. */
export const OPTION_NAMES = Object.keys(TrainerConfigSchema.shape) as OptionName[];

const show = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v));

/** Refuses anything but an object whose keys are all option `names`; an unknown key suggests the nearest name. */
export function checkOptionNames(input: unknown, names: readonly string[], source: string): asserts input is Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new TrainerConfigError(`${source}: expected an object of options, got ${show(input)}`);
  for (const key of Object.keys(input)) {
    if (!names.includes(key)) {
      const near = nearest(key, names);
      throw new TrainerConfigError(`${source}: unknown option '${key}'${near ? `; did you mean '${near}'?` : ''}`, { field: key });
    }
  }
}

/**
 * Validates a run's settings (from a config file, flags or code) and applies diffusers' defaults
 * and its cross-field rules. Errors name the field and the bad value; an unknown key suggests
 * the nearest option name.
 *
 * @example
 * ```ts
 * const config = parseTrainerConfig({
 *   pretrained_model_name_or_path: './sd15', instance_data_dir: './dog', instance_prompt: 'a photo of sks dog',
 *   max_train_steps: 400, learning_rate: 5e-6,
 * });
 * ```
 */
export function parseTrainerConfig(input: unknown, source = 'config'): TrainerConfig {
  checkOptionNames(input, OPTION_NAMES, source);
  const parsed = TrainerConfigSchema.safeParse(withLoraDefaults(input));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.map(String).join('.');
    const value = issue.path.reduce<unknown>((o, k) => (o as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey], input);
    throw new TrainerConfigError(`${source}: ${field} = ${show(value)} is invalid: ${issue.message}`, { field, value });
  }
  const c = parsed.data;
  const fail = (field: OptionName, msg: string) => {
    throw new TrainerConfigError(`${source}: ${field} = ${show(c[field])}: ${msg}`, { field, value: c[field] });
  };
  if (c.with_prior_preservation) {
    if (c.class_data_dir === null)
      fail('class_data_dir', 'You must specify a data directory for class images (with_prior_preservation is set)');
    if (c.class_prompt === null) fail('class_prompt', 'You must specify prompt for class images (with_prior_preservation is set)');
  }
  if (c.train_text_encoder && c.pre_compute_text_embeddings)
    fail('pre_compute_text_embeddings', '`--train_text_encoder` cannot be used with `--pre_compute_text_embeddings`');
  if (c.validation_images !== null)
    fail('validation_images', 'image-conditioned validation is for pipelines that take an image; SD txt2img has none');
  if (c.class_labels_conditioning !== null) fail('class_labels_conditioning', 'SD 1.x UNets have no class embedding');
  if (c.cache_latents && c.random_flip) fail('random_flip', 'cannot flip cached latents; drop --cache_latents or --random_flip');
  if (!c.lora) {
    if (c.rank !== 4) fail('rank', 'applies to LoRA training; add --lora');
    if (c.lora_dropout !== 0) fail('lora_dropout', 'applies to LoRA training; add --lora');
  } else {
    if (c.save_single_file) fail('save_single_file', 'a LoRA run writes pytorch_lora_weights.safetensors, not a whole model');
    if (c.lora_dropout > 0 && c.gradient_checkpointing)
      fail(
        'lora_dropout',
        'with --gradient_checkpointing the recomputed forward would draw other dropout masks than the first; drop one of them',
      );
  }
  return c;
}
