// Shared by the pipeline tests: the tiny model folder (written once per test file into a temporary
// folder by the committed script's writer) and the harness's relative difference.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { writeTinyModel } from '@kiln/pipeline/testing';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

let folder: Promise<string> | undefined;

/** A folder holding the tiny pipeline (seed 1234), removed when the process exits. */
export function tinyModelFolder(): Promise<string> {
  folder ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-pipeline-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const previous = k.getBackend().name;
    await k.useBackend('cpu');
    await writeTinyModel(join(dir, 'tiny-sd'));
    await k.useBackend(previous);
    return join(dir, 'tiny-sd');
  })();
  return folder;
}

/** max |a − b| / max |b|: the reference harness's relative difference (computed on a's backend). */
export async function relDiff(got: k.Tensor, want: k.Tensor): Promise<number> {
  if (got.shape.join() !== want.shape.join()) return Infinity;
  const b = want.device === got.device ? want : await want.toBackend(got.device);
  const [diff, scale] = await Promise.all(
    [k.tidy(() => k.sub(got.to('float32'), b.to('float32')).abs().max()), k.tidy(() => b.to('float32').abs().max())].map((t) => t.item()),
  );
  return diff / Math.max(scale, 1e-12);
}
