import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import type { Guidance } from './guidance.js';

/** The part of a scheduler a guided step uses (any `@kiln/scheduler` scheduler has it). @example const s: SteppingScheduler<StepOptions> = EulerDiscreteScheduler.fromConfig(config); */
export interface SteppingScheduler<O> {
  scaleModelInput(sample: Tensor, timestep: number): Tensor;
  step(modelOutput: Tensor, timestep: number, sample: Tensor, options?: O): { prevSample: Tensor };
}

/** A denoiser: `(latentInput, timestep, conditioning) → prediction`, batched (e.g. a UNet forward). @example const denoise: Denoiser = (x, t, c) => unet.forward(x, t, c).sample; */
export type Denoiser = (latentInput: Tensor, timestep: number, conditioning: Tensor) => Tensor;

/**
 * One guided denoising step, the body of every sampling loop: expand the latents for the rule,
 * scale them for the scheduler, evaluate the model once on the whole batch, combine, and step.
 *
 * @example
 * ```ts
 * const cfg = new ClassifierFreeGuidance({ guidanceScale: 7.5 });
 * const context = cfg.conditioning(promptEmbeds, negativeEmbeds);
 * scheduler.timesteps.forEach((t, i) => {
 *   latents = guidedStep(scheduler, cfg, unetForward, latents, t, i, context, { generator });
 * });
 * ```
 */
export function guidedStep<O>(
  scheduler: SteppingScheduler<O>,
  guidance: Guidance,
  model: Denoiser,
  latents: Tensor,
  timestep: number,
  stepIndex: number,
  conditioning: Tensor,
  stepOptions?: O,
): Tensor {
  return k.tidy(() => {
    const input = scheduler.scaleModelInput(guidance.expandLatents(latents), timestep);
    const output = guidance.combine(model(input, timestep, conditioning), { timestep, stepIndex });
    return scheduler.step(output, timestep, latents, stepOptions).prevSample;
  });
}
