import type { SchedulerConfigLike } from './config.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver.js';
import { EulerAncestralDiscreteScheduler } from './euler-ancestral.js';
import { EulerDiscreteScheduler } from './euler.js';
import { SchedulerConfigError } from './errors.js';
import { PNDMScheduler } from './pndm.js';
import type { SchedulerBase } from './scheduler.js';
import { UniPCMultistepScheduler } from './unipc.js';
import { LMSDiscreteScheduler } from './lms.js';
import { HeunDiscreteScheduler } from './heun.js';

/** diffusers' class names (`_class_name`) of the schedulers Kiln implements, and how to build each. @example const euler = SCHEDULERS.EulerDiscreteScheduler(config); // same as EulerDiscreteScheduler.fromConfig(config) */
export const SCHEDULERS = {
  DDPMScheduler: (c: SchedulerConfigLike, file?: string) => DDPMScheduler.fromConfig(c, file),
  DDIMScheduler: (c: SchedulerConfigLike, file?: string) => DDIMScheduler.fromConfig(c, file),
  PNDMScheduler: (c: SchedulerConfigLike, file?: string) => PNDMScheduler.fromConfig(c, file),
  EulerDiscreteScheduler: (c: SchedulerConfigLike, file?: string) => EulerDiscreteScheduler.fromConfig(c, file),
  EulerAncestralDiscreteScheduler: (c: SchedulerConfigLike, file?: string) => EulerAncestralDiscreteScheduler.fromConfig(c, file),
  DPMSolverMultistepScheduler: (c: SchedulerConfigLike, file?: string) => DPMSolverMultistepScheduler.fromConfig(c, file),
  UniPCMultistepScheduler: (c: SchedulerConfigLike, file?: string) => UniPCMultistepScheduler.fromConfig(c, file),
  LMSDiscreteScheduler: (c: SchedulerConfigLike, file?: string) => LMSDiscreteScheduler.fromConfig(c, file),
  HeunDiscreteScheduler: (c: SchedulerConfigLike, file?: string) => HeunDiscreteScheduler.fromConfig(c, file),
} satisfies Record<string, (c: SchedulerConfigLike, file?: string) => SchedulerBase>;

/**
 * SchedulerName
 *
 * @example
 * ```ts
 * const name: SchedulerName = 'DPMSolverMultistepScheduler';
 * const s = SCHEDULERS[name](config);
 * ```
 */
export type SchedulerName = keyof typeof SCHEDULERS;

/** Short names SD front ends use, for CLIs and pipelines (`--scheduler euler_a`). @example SCHEDULER_ALIASES['euler_a']; // 'EulerAncestralDiscreteScheduler' */
export const SCHEDULER_ALIASES: Record<string, SchedulerName> = {
  ddpm: 'DDPMScheduler',
  ddim: 'DDIMScheduler',
  pndm: 'PNDMScheduler',
  plms: 'PNDMScheduler',
  euler: 'EulerDiscreteScheduler',
  euler_a: 'EulerAncestralDiscreteScheduler',
  'dpm++_2m': 'DPMSolverMultistepScheduler',
  dpmpp_2m: 'DPMSolverMultistepScheduler',
  unipc: 'UniPCMultistepScheduler',
  lms: 'LMSDiscreteScheduler',
  heun: 'HeunDiscreteScheduler',
};

/**
 * Builds a scheduler from a `scheduler_config.json` object: the class named by `className` (a
 * diffusers class name or a short alias), else the config's own `_class_name`. Any scheduler's
 * config works for any other, as diffusers' `from_config` does when pipelines swap schedulers;
 * only the fields the target reads matter, the rest are kept for round-trips.
 *
 * @example
 * ```ts
 * const config = parseSchedulerConfigJson(await readFile('sd15/scheduler/scheduler_config.json', 'utf8'));
 * const pndm = schedulerFromConfig(config);                      // PNDMScheduler, as saved
 * const eulerA = schedulerFromConfig(config, { className: 'euler_a' });
 * eulerA.config.steps_offset;                                    // 1, carried over
 * ```
 */
export function schedulerFromConfig(config: SchedulerConfigLike, options: { className?: string; file?: string } = {}): SchedulerBase {
  const file = options.file ?? 'scheduler_config';
  const requested = options.className ?? (config as Record<string, unknown>)._class_name;
  if (typeof requested !== 'string') {
    throw new SchedulerConfigError(file, '_class_name', ['_class_name: missing; pass options.className (e.g. "EulerDiscreteScheduler")']);
  }
  const name = (SCHEDULER_ALIASES[requested.toLowerCase()] ?? requested) as SchedulerName;
  const make = SCHEDULERS[name];
  if (!make) {
    throw new SchedulerConfigError(file, '_class_name', [
      `_class_name: ${JSON.stringify(requested)} is not a scheduler Kiln implements (${[...Object.keys(SCHEDULERS), ...Object.keys(SCHEDULER_ALIASES)].join(', ')})`,
    ]);
  }
  return make(config, file);
}
