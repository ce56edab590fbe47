// The benchmark's models and shapes; torch_step.py mirrors them (bench/case.json is this as JSON).
import type { UNetConfigInput } from '@kiln/unet';
import type { VAEConfigInput } from '@kiln/vae';
import caseJson from './case.json' with { type: 'json' };

export const BENCH_CASE = caseJson as unknown as {
  batch: number;
  pixels: number;
  contextLength: number;
  contextDim: number;
  unet: UNetConfigInput;
  vae: VAEConfigInput;
  scheduler: Record<string, unknown>;
};
