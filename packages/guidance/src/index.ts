/**
 * @kiln/guidance: classifier-free guidance in one batched forward, negative prompts, guidance
 * rescale, and the `Guidance` interface other rules implement.
 *
 * @example
 * ```ts
 * import { ClassifierFreeGuidance, guidedStep } from '@kiln/guidance';
 * const cfg = new ClassifierFreeGuidance({ guidanceScale: 7.5 });
 * const context = cfg.conditioning(promptEmbeds, negativeEmbeds);
 * scheduler.timesteps.forEach((t, i) => (latents = guidedStep(scheduler, cfg, unetForward, latents, t, i, context)));
 * ```
 * @packageDocumentation
 */
export { GuidanceError } from './errors.js';
export type { Guidance, GuidanceContext } from './guidance.js';
export { ClassifierFreeGuidance, classifierFreeGuidance, rescaleNoiseCfg } from './cfg.js';
export type { ClassifierFreeGuidanceOptions } from './cfg.js';
export { guidedStep } from './step.js';
export type { Denoiser, SteppingScheduler } from './step.js';
