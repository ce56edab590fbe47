import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The seeded tiny CLIP text model and PyTorch's outputs for it (scripts/make_text_model_reference.py). */
export const FIXTURE = fileURLToPath(new URL('./fixtures/tiny-clip-text', import.meta.url));
export const ref = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as {
  input_ids: number[][];
  last_hidden_state: number[][][];
  hidden_states: number[][][][];
  pooler_output: number[][];
  num_parameters: number;
};

/** max |a − b| / max |b|: the relative error the issue bounds at 1e-4. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    num = Math.max(num, Math.abs(actual[i] - expected[i]));
    den = Math.max(den, Math.abs(expected[i]));
  }
  return num / den;
}
