import { KilnError } from '@kiln/tensor-core';

/**
 * A pipeline given something it cannot use: a model folder without `model_index.json` or with a
 * component Kiln does not implement, a width that is not a multiple of the VAE's scale factor,
 * `promptEmbeds` whose shape does not fit the UNet, a negative prompt without guidance inputs.
 * The message names the file, option or shape and what was expected.
 *
 * @example
 * ```ts
 * await pipe.txt2img({ prompt: 'a dog', width: 500 }); // PipelineError: txt2img: width 500 must be a multiple of 8 (the VAE's scale factor)
 * ```
 */
export class PipelineError extends KilnError {
  override name = 'PipelineError';
}
