import type { GenerationOptions } from '@kiln/pipeline';
import type { TrainerConfig } from '@kiln/dreambooth-trainer';

/** A training run, its paths already resolved inside the storage. */
export interface TrainTask {
  kind: 'train';
  config: TrainerConfig;
}

/** Generation requests on one model; each request has its fixed first seed and its files' stem. */
export interface GenerateTask {
  kind: 'generate';
  backend: string;
  /** Local path of the model. */
  model: string;
  /** Local paths of LoRAs with their scales, applied in order. */
  loras: { file: string; scale: number }[];
  /** Local path of the output folder. */
  out: string;
  /** The model's name as PNG parameters show it. */
  modelName: string;
  requests: { options: GenerationOptions & { seed: number }; stem: string }[];
}

export type ThreadTask = TrainTask | GenerateTask;

/** Messages from a task thread to its worker. */
export type ThreadMessage =
  | { type: 'log'; line: string }
  | { type: 'train-step'; step: number; maxSteps: number; epoch: number; loss: number; lr: number; itPerSec: number }
  | { type: 'generate-step'; request: number; image: number; step: number; steps: number }
  | { type: 'image'; request: number; file: string; seed: number; skipped: boolean }
  | { type: 'done'; result: { step: number; interrupted: boolean; losses: number[] } | null }
  | { type: 'error'; name: string; message: string };

/** Messages from the worker to a task thread. */
export type ControlMessage = { type: 'abort' };
