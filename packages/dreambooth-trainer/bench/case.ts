// The benchmark's models and shapes; torch_step.py mirrors them. `tiny` is bench/case.json; `sd15`
// is SD 1.5's UNet, VAE and CLIP text encoder (benchmarks/configs/) at 512², the same batch.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CLIPTextConfigInput } from '@kiln/clip';
import type { UNetConfigInput } from '@kiln/unet';
import type { VAEConfigInput } from '@kiln/vae';
import caseJson from './case.json' with { type: 'json' };

export interface BenchCase {
  batch: number;
  pixels: number;
  contextLength: number;
  contextDim: number;
  /** Token ids of the instance and class prompts ("a photo of sks dog", "a photo of dog"), padded with 49407 to contextLength. */
  promptIds: number[][];
  unet: UNetConfigInput;
  vae: VAEConfigInput;
  textEncoder: CLIPTextConfigInput;
  scheduler: Record<string, unknown>;
}

export const BENCH_CASE = caseJson as unknown as BenchCase;

const configs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'benchmarks', 'configs');
const config = (name: string) => JSON.parse(readFileSync(join(configs, name), 'utf8')) as Record<string, unknown>;

/** The named case: `tiny` (bench/case.json) or `sd15` (benchmarks/configs/sd15_*.json, 512²). */
export function benchCase(name: string): BenchCase {
  if (name === 'tiny') return BENCH_CASE;
  if (name !== 'sd15') throw new Error(`--case must be tiny or sd15, got ${name}`);
  return {
    ...BENCH_CASE,
    pixels: 512,
    contextDim: 768,
    unet: config('sd15_unet.json') as UNetConfigInput,
    vae: config('sd15_vae.json') as VAEConfigInput,
    textEncoder: config('sd15_text_encoder.json') as CLIPTextConfigInput,
  };
}
