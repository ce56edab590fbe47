import * as k from '@kiln/tensor-core';
import type { SchedulerBase } from '@kiln/scheduler';
import { PipelineError } from './errors.js';
import type { RgbaImage, Txt2ImgOptions } from './txt2img-options.js';

/**
 * Options of {@link StableDiffusionPipeline.img2img}: diffusers' `StableDiffusionImg2ImgPipeline.__call__`
 * arguments, camel-cased, with the same defaults. The size is the image's.
 *
 * @example
 * ```ts
 * const options: Img2ImgOptions = { image: rgba[0], prompt: 'the same scene at night', strength: 0.5, seed: 3 };
 * const { images } = await pipe.img2img(options);
 * ```
 */
export interface Img2ImgOptions extends Omit<Txt2ImgOptions, 'latents' | 'width' | 'height'> {
  /**
   * The starting image(s): a tensor [B, 3, H, W] in [0, 1] (what `txt2img` returns), or RGBA bytes.
   * H and W must be multiples of the VAE's scale factor. One image serves every prompt; otherwise
   * the prompts × `numImagesPerPrompt` must be a multiple of B (images are repeated in turn, as diffusers does).
   */
  image: k.Tensor | RgbaImage | readonly RgbaImage[];
  /**
   * How far the image is noised, in [0, 1] (default 0.8): the last `⌊numInferenceSteps × strength⌋`
   * steps of the schedule run, from the image noised to the first of them. 1 ignores the image's content.
   */
  strength?: number;
}

/**
 * The timesteps img2img runs at `strength`, as diffusers' `get_timesteps`: the schedule (already
 * set to `steps`) without its first `steps − ⌊steps × strength⌋` steps (× the scheduler's order).
 * Also tells the scheduler where it starts (`setBeginIndex`), for σ-based schedulers' noising.
 *
 * @example
 * ```ts
 * scheduler.setTimesteps(10);
 * img2imgTimesteps(scheduler, 10, 0.3); // [201, 101, 1] for SD 1.5's Euler
 * ```
 */
export function img2imgTimesteps(scheduler: SchedulerBase, steps: number, strength: number): number[] {
  if (!(strength >= 0 && strength <= 1)) throw new PipelineError(`img2img: strength must be in [0, 1], got ${strength}`);
  const initTimestep = Math.min(Math.floor(steps * strength), steps);
  const tStart = Math.max(steps - initTimestep, 0);
  const timesteps = scheduler.timesteps.slice(tStart * scheduler.order);
  if (timesteps.length === 0)
    throw new PipelineError(
      `img2img: strength ${strength} × ${steps} steps leaves no step to run (⌊numInferenceSteps × strength⌋ must be at least 1)`,
    );
  scheduler.setBeginIndex(tStart * scheduler.order);
  return timesteps;
}

/** The image(s) as a [B, 3, H, W] float32 tensor in [-1, 1] (VaeImageProcessor's normalisation), checked. */
export function imagePixels(image: Img2ImgOptions['image'], scale: number): k.Tensor {
  const check = (h: number, w: number) => {
    if (h % scale || w % scale)
      throw new PipelineError(`img2img: the image is ${w}×${h}; width and height must be multiples of ${scale} (the VAE's scale factor)`);
  };
  if (image instanceof k.Tensor) {
    if (image.ndim !== 4 || image.shape[1] !== 3)
      throw new PipelineError(`img2img: image must be [B, 3, H, W] in [0, 1], got [${image.shape.join(', ')}]`);
    check(image.shape[2], image.shape[3]);
    return k.tidy(() => image.to('float32').mul(2).sub(1));
  }
  const list: readonly RgbaImage[] = Array.isArray(image) ? image : [image as RgbaImage];
  if (list.length === 0) throw new PipelineError('img2img: image is an empty list');
  const { width: W, height: H } = list[0]!;
  check(H, W);
  const data = new Float32Array(list.length * 3 * H * W);
  list.forEach((img, b) => {
    if (img.width !== W || img.height !== H || img.data.length !== W * H * 4)
      throw new PipelineError(
        `img2img: image ${b} is ${img.width}×${img.height} (${img.data.length} bytes); every image must be ${W}×${H} RGBA`,
      );
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) data[(b * 3 + c) * H * W + p] = (img.data[p * 4 + c]! / 255) * 2 - 1;
  });
  return k.tensor(data, { shape: [list.length, 3, H, W] });
}
