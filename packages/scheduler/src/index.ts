/**
 * @kiln/scheduler: diffusers' noise schedulers, number for number (float32), configured by the
 * fields of `scheduler_config.json`.
 *
 * @example
 * ```ts
 * import * as k from '@kiln/tensor-core';
 * import { EulerAncestralDiscreteScheduler } from '@kiln/scheduler';
 * const s = EulerAncestralDiscreteScheduler.fromConfig(schedulerConfig);
 * s.setTimesteps(30);
 * const g = new k.Generator(42);
 * let x = k.mul(k.randn([1, 4, 64, 64], { generator: g }), s.initNoiseSigma);
 * for (const t of s.timesteps) {
 *   const eps = unet(s.scaleModelInput(x, t), t);
 *   x = s.step(eps, t, x, { generator: g }).prevSample;
 * }
 * ```
 * @packageDocumentation
 */
export { SchedulerConfigError, SchedulerError } from './errors.js';
export {
  BASE_DEFAULTS,
  BETA_SCHEDULES,
  PREDICTION_TYPES,
  TIMESTEP_SPACINGS,
  SchedulerConfigSchema,
  parseSchedulerConfigJson,
  resolveSchedulerConfig,
} from './config.js';
export type {
  BaseSchedulerConfig,
  BetaSchedule,
  PredictionType,
  SchedulerConfigInput,
  SchedulerConfigLike,
  TimestepSpacing,
} from './config.js';
export { SchedulerBase } from './scheduler.js';
export type { NoiseScheduler, SchedulerOutput, StepOptions, Timesteps } from './scheduler.js';
export { SigmaScheduler } from './sigma-scheduler.js';
export type { SigmaSchedulerConfig } from './sigma-scheduler.js';
export { DDPMScheduler, DDPM_DEFAULTS } from './ddpm.js';
export type { DDPMConfig } from './ddpm.js';
export { DDIMScheduler, DDIM_DEFAULTS } from './ddim.js';
export type { DDIMConfig } from './ddim.js';
export { PNDMScheduler, PNDM_DEFAULTS } from './pndm.js';
export type { PNDMConfig } from './pndm.js';
export { EulerDiscreteScheduler, EULER_DEFAULTS } from './euler.js';
export type { EulerConfig } from './euler.js';
export { EulerAncestralDiscreteScheduler, EULER_ANCESTRAL_DEFAULTS } from './euler-ancestral.js';
export { DPMSolverMultistepScheduler, DPM_SOLVER_DEFAULTS } from './dpm-solver.js';
export type { DPMSolverConfig } from './dpm-solver.js';
export { UniPCMultistepScheduler, UNIPC_DEFAULTS } from './unipc.js';
export type { UniPCConfig } from './unipc.js';
export { LMSDiscreteScheduler, LMS_DEFAULTS } from './lms.js';
export { HeunDiscreteScheduler, HEUN_DEFAULTS } from './heun.js';
export type { HeunConfig } from './heun.js';
export { MultistepScheduler } from './multistep.js';
export type { MultistepConfig } from './multistep.js';
export { SCHEDULERS, SCHEDULER_ALIASES, schedulerFromConfig } from './registry.js';
export type { SchedulerName } from './registry.js';
export {
  betasForAlphaBar,
  betasForConfig,
  cumprodOfAlphas,
  karrasSigmas,
  rescaleZeroTerminalSnr,
  sigmaToT,
  sigmasOf,
  spacedTimesteps,
} from './schedule.js';
export { minSnrLossWeights } from './training.js';
