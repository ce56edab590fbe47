import { z } from 'zod';
import { readFlags, optionRows } from './args.js';
import { checkOptionNames, OPTION_HELP, TrainerConfigSchema } from './config.js';
import type { TrainerConfig } from './config.js';
import { TrainerConfigError } from './errors.js';
import { runTrainer } from './train.js';
import type { TrainHooks, TrainResult } from './train.js';

// diffusers' examples/text_to_image/train_text_to_image.py on an image folder with caption files:
// DreamBooth's trainer without the instance prompt and the prior-preservation options.
const DREAMBOOTH_ONLY = {
  instance_data_dir: true,
  instance_prompt: true,
  class_data_dir: true,
  class_prompt: true,
  with_prior_preservation: true,
  prior_loss_weight: true,
  num_class_images: true,
  sample_batch_size: true,
  prior_generation_precision: true,
  class_inference_steps: true,
  // LoRA text-to-image is not offered: its defaults and refusals live in parseTrainerConfig's DreamBooth rules.
  lora: true,
  rank: true,
  lora_dropout: true,
} as const;

/** The options of `kiln train-text-to-image`: DreamBooth's, with `train_data_dir` (images + caption files) in place of the instance and class options. */
export const TextToImageConfigSchema = TrainerConfigSchema.omit(DREAMBOOTH_ONLY).extend({
  /** A folder of images, each with a caption file (`caption_extension`, default `.txt`); an image without one trains unconditionally. */
  train_data_dir: z.string().min(1),
  caption_extension: z.string().min(1).default('.txt'),
});
export type TextToImageConfigInput = z.input<typeof TextToImageConfigSchema>;

/** The validated text-to-image config, as the trainer's config (empty instance prompt, no prior preservation). */
export function parseTextToImageConfig(input: unknown, source = 'train-text-to-image'): TrainerConfig {
  checkOptionNames(input, Object.keys(TextToImageConfigSchema.shape), source);
  const parsed = TextToImageConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.map(String).join('.');
    throw new TrainerConfigError(`${source}: ${field}: ${issue.message}`, { field });
  }
  const { train_data_dir, ...rest } = parsed.data;
  const defaults = TrainerConfigSchema.parse({ pretrained_model_name_or_path: '-', instance_data_dir: '-', instance_prompt: '-' });
  return { ...defaults, ...rest, instance_data_dir: train_data_dir, instance_prompt: '' };
}

/**
 * Text-to-image fine-tuning (or pretraining from a freshly initialised model folder) on captioned
 * images, as diffusers' `train_text_to_image.py`: the DreamBooth trainer's loop, checkpoints, exact
 * resume, validation and tracking, with each image's caption as its prompt. Node only.
 *
 * @example
 * ```ts
 * await trainTextToImage({ pretrained_model_name_or_path: './base-init', train_data_dir: './world', output_dir: './base', train_text_encoder: true, max_train_steps: 2000 });
 * ```
 */
export async function trainTextToImage(input: TextToImageConfigInput, hooks: TrainHooks = {}): Promise<TrainResult> {
  return runTrainer(parseTextToImageConfig(input), hooks);
}

/**
 * Parses `kiln train-text-to-image` flags (train_text_to_image.py's names; `--config run.yaml`).
 *
 * @example
 * ```ts
 * const config = parseTextToImageArgs(['--pretrained_model_name_or_path', './sd15', '--train_data_dir', './captioned']);
 * ```
 */
export function parseTextToImageArgs(argv: readonly string[]): TrainerConfig {
  const { options, configPath } = readFlags(argv, TextToImageConfigSchema.shape);
  return parseTextToImageConfig(options, configPath ?? 'train-text-to-image');
}

/** `kiln train-text-to-image --help`. */
export function textToImageHelp(): string {
  return `kiln train-text-to-image --pretrained_model_name_or_path DIR --train_data_dir DIR [options]

Text-to-image training of Stable Diffusion 1.x on images with caption files, as diffusers'
train_text_to_image.py (the DreamBooth trainer's loop, checkpoints, resume and tracking).
--config run.yaml|json reads options from a file; flags override it.

options:
${optionRows(TextToImageConfigSchema.shape, { ...OPTION_HELP, train_data_dir: 'images, each with a caption file (an image without one trains unconditionally)', caption_extension: "the caption files' extension" })}`;
}
