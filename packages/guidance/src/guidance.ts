import type { Tensor } from '@kiln/tensor-core';

/** Where in sampling a `combine` call happens (for rules that change with the step). @example rule.combine(output, { timestep: 981, stepIndex: 0 }); */
export interface GuidanceContext {
  /** The scheduler's timestep. */
  timestep: number;
  /** The index of the step in the schedule. */
  stepIndex: number;
}

/**
 * A guidance rule: how one denoising step batches its model inputs and turns the batched output
 * into one prediction per latent. Classifier-free guidance evaluates each latent twice
 * (unconditional and conditional) in one batched forward; other rules (no guidance, per-step
 * schedules of the scale, several conditions) implement the same three methods, so a pipeline
 * never special-cases them.
 *
 * @example
 * ```ts
 * const rule: Guidance = new ClassifierFreeGuidance({ guidanceScale: 7.5 });
 * latents = guidedStep(scheduler, rule, unetForward, latents, t, i, rule.conditioning(cond, uncond));
 * ```
 */
export interface Guidance {
  /** How many copies of each latent one step evaluates (1 without guidance, 2 for CFG). */
  readonly copies: number;
  /** The model's latent input: `latents` repeated `copies` times along the batch. */
  expandLatents(latents: Tensor): Tensor;
  /** The model's conditioning batch (e.g. `encoder_hidden_states`), in the order `combine` expects. */
  conditioning(cond: Tensor, uncond?: Tensor): Tensor;
  /** One model output per latent, from the output of the batched forward. */
  combine(modelOutput: Tensor, context?: GuidanceContext): Tensor;
}
