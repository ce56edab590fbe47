import { KilnError } from '@kiln/tensor-core';

/**
 * A scheduler config that cannot be used: an unknown `beta_schedule`, a negative `steps_offset`, a
 * field of the wrong type… `file` names the config (a path, or `scheduler_config` when it came from
 * memory) and `field` the first offending field, so the message is useful without a stack trace.
 *
 * @example
 * ```ts
 * import { DDIMScheduler, SchedulerConfigError } from '@kiln/scheduler';
 * try {
 *   DDIMScheduler.fromConfig({ beta_schedule: 'cosine' });
 * } catch (e) {
 *   if (e instanceof SchedulerConfigError) console.error(e.field); // 'beta_schedule'
 * }
 * ```
 */
export class SchedulerConfigError extends KilnError {
  override name = 'SchedulerConfigError';
  constructor(
    readonly file: string,
    readonly field: string,
    readonly issues: string[],
  ) {
    super(`${file}: invalid scheduler config: ${issues.join('; ')}`);
  }
}

/**
 * A scheduler used out of order or with arguments it cannot take: `step` before `setTimesteps`,
 * `num_inference_steps` out of range, a timestep that is not in the schedule, mismatched shapes.
 *
 * @example
 * ```ts
 * const s = EulerDiscreteScheduler.fromConfig({});
 * s.setTimesteps(2000); // throws SchedulerError: num_inference_steps (2000) > num_train_timesteps (1000)
 * ```
 */
export class SchedulerError extends KilnError {
  override name = 'SchedulerError';
}
