/**
 * @kiln/pipeline: Stable Diffusion 1.x text-to-image, computed as diffusers'
 * `StableDiffusionPipeline` computes it, on every Kiln backend.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * import { StableDiffusionPipeline, formatParameters } from '@kiln/pipeline';
 *
 * await k.useBackend('wasm');
 * const pipe = await StableDiffusionPipeline.fromPretrained('./stable-diffusion-v1-5');
 * const { images, rgba } = await pipe.txt2img({ prompt: 'a lighthouse at dusk', seed: 42, numInferenceSteps: 20 });
 * ```
 * @packageDocumentation
 */
export { PipelineError } from './errors.js';
export { StableDiffusionPipeline } from './pipeline.js';
export type { StableDiffusionComponents, PipelineLoadOptions, EncodePromptOptions } from './pipeline.js';
export type { LoadLoraOptions, LoraAdapterInfo } from './lora.js';
export { img2imgTimesteps } from './img2img.js';
export type { Img2ImgOptions } from './img2img.js';
export type { Txt2ImgOptions, Txt2ImgResult, StepInfo, RgbaImage } from './txt2img-options.js';
export { GenerationOptionsSchema } from './generation-options.js';
export type { GenerationOptions } from './generation-options.js';
export { toRgba, toImageData } from './images.js';
export { encodePng } from './png.js';
export type { EncodePngOptions } from './png.js';
export { formatParameters, SAMPLER_NAMES } from './parameters.js';
export type { GenerationParameters } from './parameters.js';
export { ModelIndexSchema, modelIndexFor } from './model-index.js';
export { SD15_SCHEDULER_CONFIG, LDM_TEXT_ENCODER_PREFIX } from './sd15.js';
export type { SingleFileOptions } from './single-file.js';
export type { ModelIndex } from './model-index.js';
