/** A training job's progress, as BullMQ's `progress` event and `kiln jobs status` carry it. */
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

/** A generation job's progress. */
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

/** What a job reports while it runs. */
export type JobProgress = TrainProgress | GenerateProgress;

/** What a finished `train-dreambooth` job returns (its BullMQ return value). */
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

/** What a finished `generate` or `generate-batch` job returns. */
export interface GenerateResultValue {
  /** Per request, the storage keys of its PNGs and their seeds (image i used seed + i). */
  results: { files: string[]; seeds: number[] }[];
  /** Images already there from an earlier attempt, not generated again. */
  skipped: number;
}
