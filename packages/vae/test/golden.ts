// Loads a reference folder made by the real diffusers (see fixtures/README.md) and compares tensors.
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';

export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url));

/** The backends under test: `KILN_TEST_BACKENDS` (cpu and wasm by default; the WebGPU suites set webgpu). */
export const backends = (process.env.KILN_TEST_BACKENDS ?? 'cpu,wasm').split(',').filter((b) => b && k.listBackends().includes(b));

/** io.safetensors as a map of cpu tensors. */
export async function loadIO(dir: string): Promise<Record<string, k.Tensor>> {
  await k.useBackend('cpu');
  return loadSafetensors(`${dir}io.safetensors`);
}

/** max |a − b| / max |b|: the harness's relative difference. */
export async function relDiff(got: k.Tensor, want: k.Tensor): Promise<number> {
  if (got.shape.join() !== want.shape.join()) return Infinity;
  const a = await got.to('float32').data();
  const b = await want.to('float32').data();
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

/** Moves a cpu tensor to the current backend (reads are async). */
export async function onBackend(t: k.Tensor, backend: string): Promise<k.Tensor> {
  return backend === 'cpu' ? t : k.keep(await t.toBackend(backend));
}
