/**
 * A training job's progress, as BullMQ's `progress` event and `kiln jobs status` carry it.
 *
 * @example
 * ```ts
 * queueEvents.on('progress', ({ jobId, data }) => {
 *   const p = data as unknown as TrainProgress;
 *   console.log(jobId, `step ${p.step}/${p.maxSteps} loss ${p.loss.toFixed(4)} ETA ${Math.round(p.etaSeconds)} s`);
 * });
 * ```
 */
export interface TrainProgress {
  kind: 'train';
  /** Optimizer steps done, of `maxSteps`. */
  step: number;
  maxSteps: number;
  epoch: number;
  /** The step's mean loss. */
  loss: number;
  lr: number;
  itPerSec: number;
  /** Seconds left at the current speed. */
  etaSeconds: number;
  /** Storage keys of the validation images logged at this step, when it validated. */
  validationImages?: string[];
}

/**
 * A generation job's progress.
 *
 * @example
 * ```ts
 * const p = (await client.status(id)).progress as GenerateProgress;
 * console.log(`${p.imagesDone}/${p.images} images`);
 * ```
 */
export interface GenerateProgress {
  kind: 'generate';
  /** The request being worked on (from 1), of `requests`. */
  request: number;
  requests: number;
  /** Images finished, of `images` in the whole job. */
  imagesDone: number;
  images: number;
  /** Denoising step of the image in progress, of `steps`. */
  step: number;
  steps: number;
  etaSeconds: number;
}

/**
 * What a job reports while it runs.
 *
 * @example
 * ```ts
 * const p: JobProgress | null = (await client.status(id)).progress;
 * if (p?.kind === 'train') console.log(p.loss);
 * ```
 */
export type JobProgress = TrainProgress | GenerateProgress;

/**
 * What a finished `train-dreambooth` job returns (its BullMQ return value).
 *
 * @example
 * ```ts
 * const { report, resumedFrom } = (await client.status(id)).result as TrainResultValue; // 'runs/dog/logs/report.html', null
 * ```
 */
export interface TrainResultValue {
  /** Storage key of the trained pipeline (the payload's output_dir). */
  outputDir: string;
  /** Storage key of the run's HTML report (loss, lr, speed, memory curves, validation images). */
  report: string;
  step: number;
  /** The step this attempt resumed from (a killed worker's or a failed attempt's checkpoint), or null for a fresh start. */
  resumedFrom: number | null;
  /** The loss of each step this attempt ran. */
  losses: number[];
}

/**
 * What a finished `generate` or `generate-batch` job returns.
 *
 * @example
 * ```ts
 * const { results } = (await client.status(id)).result as GenerateResultValue;
 * console.log(results[0].files); // ['images/fox/0b5c1d2e-00000-0.png']
 * ```
 */
export interface GenerateResultValue {
  /** Per request, the storage keys of its PNGs and their seeds (image i used seed + i). */
  results: { files: string[]; seeds: number[] }[];
  /** Images already there from an earlier attempt, not generated again. */
  skipped: number;
}
