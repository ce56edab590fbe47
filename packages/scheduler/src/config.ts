import { z } from 'zod';
import { SchedulerConfigError } from './errors.js';

const int = z.number().int();
/** A number that may be ±Infinity: Python's json writes `lambda_min_clipped = -inf` as `-Infinity`. */
const extendedNumber = z.custom<number>((v) => typeof v === 'number' && !Number.isNaN(v), 'expected a number');

/** The `beta_schedule` values Kiln implements. @example BETA_SCHEDULES.includes('scaled_linear'); // true */
export const BETA_SCHEDULES = ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const;
/** The `prediction_type` values: what the model predicts. @example PREDICTION_TYPES; // ['epsilon', 'v_prediction', 'sample'] */
export const PREDICTION_TYPES = ['epsilon', 'v_prediction', 'sample'] as const;
/** The `timestep_spacing` values ("Common Diffusion Noise Schedules…", Table 2). @example TIMESTEP_SPACINGS; // ['leading', 'trailing', 'linspace'] */
export const TIMESTEP_SPACINGS = ['leading', 'trailing', 'linspace'] as const;
/** How betas are spaced (`beta_schedule`). @example const schedule: BetaSchedule = 'scaled_linear'; // SD 1.x */
export type BetaSchedule = (typeof BETA_SCHEDULES)[number];
/** What the model predicts (`prediction_type`): noise ε, velocity v, or the sample x₀. @example const target = config.prediction_type === 'v_prediction' ? scheduler.getVelocity(x0, noise, t) : noise; */
export type PredictionType = (typeof PREDICTION_TYPES)[number];
/** How inference timesteps are spaced (`timestep_spacing`). @example DDIMScheduler.fromConfig({ ...config, timestep_spacing: 'trailing' }); // with zero-terminal-SNR models */
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

/**
 * The fields of diffusers' `scheduler_config.json` that Kiln's schedulers read (snake_case, as in
 * the file). Every field is optional here: each scheduler fills the missing ones with its own
 * diffusers defaults (`DDPMScheduler` clips samples by default, `EulerDiscreteScheduler` uses
 * linspace spacing…). Unknown fields (`_class_name`, `_diffusers_version`, other schedulers' fields)
 * are kept, so a config read from one scheduler and handed to another round-trips, as pipelines do
 * when they swap schedulers.
 *
 * @example
 * ```ts
 * const config = SchedulerConfigSchema.parse(JSON.parse(text)); // snake_case fields, defaults filled
 * ```
 */
export const SchedulerConfigSchema = z
  .object({
    num_train_timesteps: int.positive(),
    beta_start: z.number().positive(),
    beta_end: z.number().positive(),
    beta_schedule: z.enum(BETA_SCHEDULES),
    trained_betas: z.array(z.number().min(0).max(1)).nonempty().nullable(),
    prediction_type: z.enum(PREDICTION_TYPES),
    timestep_spacing: z.enum(TIMESTEP_SPACINGS),
    steps_offset: int.nonnegative(),
    clip_sample: z.boolean(),
    clip_sample_range: z.number().positive(),
    set_alpha_to_one: z.boolean(),
    skip_prk_steps: z.boolean(),
    rescale_betas_zero_snr: z.boolean(),
    thresholding: z.boolean(),
    dynamic_thresholding_ratio: z.number(),
    sample_max_value: z.number(),
    variance_type: z.enum(['fixed_small', 'fixed_small_log', 'fixed_large', 'fixed_large_log', 'learned', 'learned_range']).nullable(),
    // sigma schedulers (Euler, Euler ancestral, DPM-Solver)
    use_karras_sigmas: z.boolean(),
    use_exponential_sigmas: z.boolean(),
    use_beta_sigmas: z.boolean(),
    sigma_min: z.number().positive().nullable(),
    sigma_max: z.number().positive().nullable(),
    interpolation_type: z.enum(['linear', 'log_linear']),
    timestep_type: z.enum(['discrete', 'continuous']),
    final_sigmas_type: z.enum(['zero', 'sigma_min']),
    // DPM-Solver
    solver_order: int.min(1).max(3),
    algorithm_type: z.enum(['dpmsolver++', 'dpmsolver', 'sde-dpmsolver++', 'sde-dpmsolver', 'deis']),
    solver_type: z.enum(['midpoint', 'heun', 'logrho', 'bh1', 'bh2']),
    lower_order_final: z.boolean(),
    euler_at_final: z.boolean(),
    use_lu_lambdas: z.boolean(),
    lambda_min_clipped: extendedNumber.nullable(),
    // UniPC
    predict_x0: z.boolean(),
    disable_corrector: z.array(int.nonnegative()),
  })
  .partial()
  .passthrough()
  .refine((c) => c.beta_start === undefined || c.beta_end === undefined || c.beta_start <= c.beta_end, {
    message: 'beta_start must not exceed beta_end',
    path: ['beta_start'],
  });

/** A scheduler config as read from `scheduler_config.json` (any subset of the fields). @example const input: SchedulerConfigInput = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 }; */
export type SchedulerConfigInput = z.input<typeof SchedulerConfigSchema>;
type Parsed = z.output<typeof SchedulerConfigSchema>;
/** What `fromConfig` accepts: a parsed `scheduler_config.json` (typed fields, or any JSON object). @example schedulerFromConfig(JSON.parse(await readFile('scheduler_config.json', 'utf8')) as SchedulerConfigLike); */
export type SchedulerConfigLike = SchedulerConfigInput | Record<string, unknown>;

/** Fields every Kiln scheduler resolves (its defaults fill what the file leaves out). @example scheduler.config.num_train_timesteps; // 1000; every field resolved, snake_case as in the file */
export interface BaseSchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: number[] | null;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  rescale_betas_zero_snr: boolean;
  /** Unknown fields, kept for round-trips. */
  [extra: string]: unknown;
}

/** diffusers' `__init__` defaults shared by every scheduler here (SD's own values differ: read the file). @example BASE_DEFAULTS.num_train_timesteps; // 1000 */
export const BASE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
} satisfies Partial<BaseSchedulerConfig>;

function issuesOf(error: z.ZodError): { field: string; issues: string[] } {
  const issues = error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return { field: error.issues[0]?.path.join('.') || '(root)', issues };
}

/**
 * Validates a scheduler config and fills its gaps with `defaults` (a scheduler's diffusers
 * defaults). `null` counts as missing, as in diffusers (`sigma_min: null` means "use the schedule's").
 *
 * @example
 * ```ts
 * const c = resolveSchedulerConfig({ beta_schedule: 'scaled_linear' }, { ...BASE_DEFAULTS, clip_sample: true });
 * c.clip_sample; // true
 * ```
 */
export function resolveSchedulerConfig<D extends Partial<BaseSchedulerConfig>>(
  raw: unknown,
  defaults: D,
  file = 'scheduler_config',
): D & Parsed & BaseSchedulerConfig {
  const r = SchedulerConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const { field, issues } = issuesOf(r.error);
    throw new SchedulerConfigError(file, field, issues);
  }
  const given = Object.fromEntries(Object.entries(r.data).filter(([, v]) => v !== undefined && v !== null));
  return { ...defaults, ...given } as D & Parsed & BaseSchedulerConfig;
}

/** Throws the config error for a field whose value Kiln does not implement (named, never ignored). */
export function unsupported(file: string, field: string, value: unknown, supported: readonly unknown[]): never {
  throw new SchedulerConfigError(file, field, [
    `${field}: ${JSON.stringify(value)} is not supported by Kiln (supported: ${supported.map((v) => JSON.stringify(v)).join(', ')})`,
  ]);
}

/**
 * Parses the text of a `scheduler_config.json` as Python's `json` writes it: besides standard JSON,
 * the bare tokens `NaN`, `Infinity` and `-Infinity` (diffusers saves `lambda_min_clipped = -inf`
 * that way, and `JSON.parse` rejects it).
 *
 * @example
 * ```ts
 * parseSchedulerConfigJson('{"lambda_min_clipped": -Infinity}').lambda_min_clipped; // -Infinity
 * ```
 */
export function parseSchedulerConfigJson(text: string, file = 'scheduler_config.json'): Record<string, unknown> {
  // Quote the bare tokens outside strings, then revive them.
  const marked = text.replace(/("(?:[^"\\]|\\.)*")|(-?Infinity|NaN)/g, (m, str: string | undefined, tok: string | undefined) =>
    str !== undefined ? str : `"\\u0000${tok}"`,
  );
  let value: unknown;
  try {
    value = JSON.parse(marked, (_k, v: unknown) => (typeof v === 'string' && v.startsWith('\u0000') ? Number(v.slice(1)) : v));
  } catch (e) {
    throw new SchedulerConfigError(file, '(root)', [`not valid JSON: ${(e as Error).message}`]);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SchedulerConfigError(file, '(root)', ['expected a JSON object']);
  }
  return value as Record<string, unknown>;
}
