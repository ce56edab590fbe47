/**
 * Scale benchmark: > 6 GB of live tensors on the wasm backend (wasm32 memories stop at 4 GiB;
 * Kiln's tensors live outside them). Allocates 14 × 512 MiB f32 tensors, runs a GEMM streamed
 * through the scratch memory on each and an elementwise add, checks the values and reports times.
 *
 *   pnpm --filter @kiln/benchmarks bench:scale      (needs ~9 GB free RAM)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';

const here = dirname(fileURLToPath(import.meta.url));
await k.useBackend('wasm');
const rows = 131072;
const cols = 1024;
const count = 14;
const t0 = performance.now();
const big = Array.from({ length: count }, (_, i) => k.full([rows, cols], i + 1));
const tAlloc = performance.now() - t0;
const live = k.memory().liveBytes;
const w = k.full([cols, 1], 0.5);
const t1 = performance.now();
let ok = true;
for (let i = 0; i < count; i++) {
  const y = big[i].matmul(w);
  const d = (await y.slice(0, rows - 1, rows).data()) as Float32Array;
  ok &&= d[0] === (i + 1) * cols * 0.5;
  y.dispose();
}
const tGemm = performance.now() - t1;
const s = big[0].add(big[count - 1]);
ok &&= ((await s.slice(0, rows - 1, rows).data()) as Float32Array)[cols - 1] === count + 1;
s.dispose();
const result = {
  date: new Date().toISOString(),
  liveBytes: live,
  tensors: count,
  tensorBytes: rows * cols * 4,
  wasmMemoryBytes: Number(k.memory().wasmMemoryBytes ?? 0),
  allocMs: tAlloc,
  gemmMsPerTensor: tGemm / count,
  ok,
};
big.forEach((t) => t.dispose());
w.dispose();
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'scale.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `${(live / 1e9).toFixed(2)} GB live in ${count} tensors on wasm (wasm memory ${(result.wasmMemoryBytes / 1e9).toFixed(2)} GB); GEMM over each 512 MiB tensor ${result.gemmMsPerTensor.toFixed(0)} ms; values ${ok ? 'correct' : 'WRONG'}`,
);
if (!ok) process.exitCode = 1;
await k.useBackend('cpu');
