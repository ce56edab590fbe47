import type * as k from '@kiln/tensor-core';
import type { SchedulerBase } from '@kiln/scheduler';

/** What {@link Txt2ImgOptions.callback} is told after each denoising step. */
export interface StepInfo {
  /** The step just taken, from 0. */
  step: number;
  /** How many steps the schedule has. */
  numSteps: number;
  /** The scheduler's timestep of that step. */
  timestep: number;
  /** The latents after the step (owned by the pipeline: read or copy, do not dispose). */
  latents: k.Tensor;
}

/**
 * Options of {@link StableDiffusionPipeline.txt2img}: diffusers' `StableDiffusionPipeline.__call__`
 * arguments, camel-cased, with the same defaults.
 */
export interface Txt2ImgOptions {
  /** One prompt, or one per batch row. Give this or `promptEmbeds`. */
  prompt?: string | readonly string[];
  /** What to steer away from (the unconditional half of CFG); empty text when absent. One string is used for every prompt. */
  negativePrompt?: string | readonly string[];
  /** Text-encoder output [B, 77, cross_attention_dim] instead of `prompt`. */
  promptEmbeds?: k.Tensor;
  /** Embeddings of the negative prompt, the shape of `promptEmbeds`. */
  negativePromptEmbeds?: k.Tensor;
  /** Initial noise [B·numImagesPerPrompt, 4, height/8, width/8] instead of drawing it (it is scaled by the scheduler's `initNoiseSigma`, as in diffusers). */
  latents?: k.Tensor;
  /** Denoising steps (default 50). */
  numInferenceSteps?: number;
  /** Classifier-free guidance scale (default 7.5; ≤ 1 turns guidance off). */
  guidanceScale?: number;
  /** Guidance rescale φ in [0, 1] (Lin et al. 2023; default 0). */
  guidanceRescale?: number;
  /** Image width in pixels, a multiple of the VAE scale factor (default: the UNet's `sample_size` × 8). */
  width?: number;
  /** Image height in pixels (default as `width`). */
  height?: number;
  /** Where the initial noise and any ancestral noise come from; advances. */
  generator?: k.Generator;
  /** Shorthand for `generator: new k.Generator(seed)`. Without either a random seed is drawn and returned. */
  seed?: number;
  /** Images for each prompt (default 1). */
  numImagesPerPrompt?: number;
  /** Another scheduler for this call: a diffusers class name or alias (`'euler_a'`, `'dpm++_2m'`), made from the pipeline scheduler's config, or a scheduler object. */
  scheduler?: string | SchedulerBase;
  /** diffusers' `clip_skip`: take the text encoder's hidden state this many layers before the last (then its final layer norm). A1111's "Clip skip: 2" is `clipSkip: 1`. */
  clipSkip?: number;
  /** DDIM's η (default 0). */
  eta?: number;
  /** Called after every step (awaited, so it may read the latents or report progress). */
  callback?: (info: StepInfo) => void | Promise<void>;
}

/** An 8-bit RGBA image, the layout of the browser's `ImageData`. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  /** `width × height × 4` bytes, rows top to bottom, alpha 255. */
  readonly data: Uint8ClampedArray;
}

/** What {@link StableDiffusionPipeline.txt2img} returns. */
export interface Txt2ImgResult {
  /** [N, 3, height, width] float32 in [0, 1] (the caller owns it). */
  images: k.Tensor;
  /** The same images as RGBA bytes, rounded as diffusers' `numpy_to_pil` does. */
  rgba: RgbaImage[];
  /** The seed of the generator used (absent when a `generator` was given). */
  seed?: number;
  /** The scheduler's diffusers class name. */
  scheduler: string;
}
