import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseSchedulerConfigJson } from '../src/index.js';

/** One step of a golden file (see fixtures/README.md). */
export interface GoldenStep {
  i: number;
  t: number;
  scaled_model_input: number[];
  model_output: number[];
  noise: number[] | null;
  prev_sample: number[];
  pred_original_sample?: number[];
}

export interface Golden {
  scheduler: string;
  variant: string;
  prediction_type: string;
  num_inference_steps: number;
  shape: number[];
  config: Record<string, unknown>;
  alphas_cumprod: number[];
  timesteps: number[];
  timesteps_dtype: string;
  init_noise_sigma: number;
  initial_noise: number[];
  steps: GoldenStep[];
  final_sample: number[];
  sigmas?: number[];
  step_kwargs?: { eta?: number; s_churn?: number; s_tmin?: number; s_tmax?: number };
  add_noise: { begin_index: number; t: number; original: number[]; noise: number[]; result: number[] };
}

export const fixturesDir = fileURLToPath(new URL('./fixtures/', import.meta.url));

export function loadGoldens(): Golden[] {
  return (
    readdirSync(fixturesDir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      // diffusers writes -inf config values as bare -Infinity, which JSON.parse rejects.
      .map((f) => parseSchedulerConfigJson(readFileSync(fixturesDir + f, 'utf8'), f) as unknown as Golden)
  );
}

/** max |a − b| / max |b|: the harness's relative error (0 when both are all zeros). */
export function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  if (Number.isNaN(diff)) return Infinity;
  return scale === 0 ? diff : diff / scale;
}
