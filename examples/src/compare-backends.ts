/**
 * Times both training examples on each backend that works here (median ms/step of 3 runs) and
 * prints the speed-up over cpu. `KILN_COMPARE_BACKENDS=cpu,wasm,webgpu` picks the backends.
 */
import * as k from '@kiln/tensor-core';
import { trainConvnet } from './train-convnet.js';
import { trainMlp } from './train-mlp.js';

const names = (process.env.KILN_COMPARE_BACKENDS ?? 'cpu,wasm').split(',');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: { example: string; backend: string; msPerStep: number; finalLoss: number }[] = [];
for (const [example, fn, steps] of [
  ['mlp', trainMlp, 100],
  ['convnet', trainConvnet, 40],
] as const) {
  for (const backend of names) {
    try {
      await k.useBackend(backend);
    } catch {
      console.log(`${backend}: not available here`);
      continue;
    }
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await fn({ steps, backend }));
    rows.push({ example, backend, msPerStep: median(runs.map((r) => r.msPerStep)), finalLoss: runs[0].losses[steps - 1] });
  }
}
for (const r of rows) {
  const cpu = rows.find((c) => c.example === r.example && c.backend === 'cpu');
  const speedup = cpu ? ` (${(cpu.msPerStep / r.msPerStep).toFixed(1)}× cpu)` : '';
  console.log(
    `${r.example.padEnd(8)} ${r.backend.padEnd(7)} ${r.msPerStep.toFixed(1).padStart(7)} ms/step${speedup}  final loss ${r.finalLoss.toFixed(6)}`,
  );
}
