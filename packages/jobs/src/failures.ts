/**
 * Errors that no retry can fix: the job's input is wrong (its config, its images, its paths, its
 * model) or the run itself went bad deterministically (a diverged loss repeats with the same
 * seed). A job failing with one of these fails at once, with the error as its failure reason.
 * Everything else (a lost connection, a full disk, a crashed backend, a bug) is retried with backoff.
 *
 * @example
 * ```ts
 * PERMANENT_ERRORS.has('TrainerConfigError'); // true: fails at once, no retry
 * ```
 */
export const PERMANENT_ERRORS: ReadonlySet<string> = new Set([
  // @kiln/jobs
  'JobPayloadError',
  'StoragePathError',
  'JobCancelledError',
  // @kiln/dreambooth-trainer
  'TrainerConfigError',
  'DatasetError',
  'CheckpointError',
  'TrainingDivergedError',
  // models and tensors: a model folder or request that cannot work
  'PipelineError',
  'StateDictError',
  'SafetensorsError',
  'ConfigError',
  'UNetConfigError',
  'VAEConfigError',
  'CLIPConfigError',
  'SchedulerConfigError',
  'TokenizerError',
  'LoraFormatError',
  'ShapeError',
  'DTypeError',
  'ArgumentError',
]);

/**
 * Whether an error (or an error's name, as it crosses a thread) is permanent: see {@link PERMANENT_ERRORS}.
 *
 * @example
 * ```ts
 * isPermanent(new DatasetError('dog/1.png: not a PNG')); // true
 * isPermanent(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })); // false
 * ```
 */
export function isPermanent(error: { name: string } | string): boolean {
  return PERMANENT_ERRORS.has(typeof error === 'string' ? error : error.name);
}
