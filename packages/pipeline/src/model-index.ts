import { z } from 'zod';

// A component entry: [library, class name]; [null, null] marks a component left out (a pipeline
// saved without its safety checker).
const Component = z.tuple([z.string().nullable(), z.string().nullable()]);

/**
 * diffusers' `model_index.json` for a Stable Diffusion 1.x pipeline: the pipeline class and the
 * library and class of each component. Kiln loads the five components below and ignores the
 * safety checker and feature extractor; other fields are kept.
 *
 * @example
 * ```ts
 * ModelIndexSchema.parse(JSON.parse(await readFile('sd15/model_index.json', 'utf8'))).unet; // ['diffusers', 'UNet2DConditionModel']
 * ```
 */
export const ModelIndexSchema = z
  .object({
    _class_name: z.string(),
    _diffusers_version: z.string().optional(),
    tokenizer: z.tuple([z.string(), z.enum(['CLIPTokenizer', 'CLIPTokenizerFast'])]),
    text_encoder: z.tuple([z.string(), z.literal('CLIPTextModel')]),
    unet: z.tuple([z.string(), z.literal('UNet2DConditionModel')]),
    vae: z.tuple([z.string(), z.literal('AutoencoderKL')]),
    scheduler: z.tuple([z.string(), z.string()]),
    safety_checker: Component.optional(),
    feature_extractor: Component.optional(),
    requires_safety_checker: z.boolean().optional(),
  })
  .passthrough();

/** A parsed `model_index.json`. */
export type ModelIndex = z.infer<typeof ModelIndexSchema>;

/**
 * The `model_index.json` Kiln writes for a Stable Diffusion pipeline (no safety checker, as
 * diffusers writes one saved with `safety_checker=None`).
 *
 * @example
 * ```ts
 * modelIndexFor('PNDMScheduler').scheduler; // ['diffusers', 'PNDMScheduler']
 * ```
 */
export function modelIndexFor(schedulerClass: string): ModelIndex {
  return {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: '0.31.0',
    feature_extractor: [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ['diffusers', schedulerClass],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
}
