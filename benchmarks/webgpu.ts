/**
 * Throughput of the webgpu backend's main kernels on whatever adapter Dawn finds: matmul, 3×3
 * conv2d (forward and both gradients) and fused attention, median of several timed runs after a
 * warm-up (which compiles the pipelines). Writes results/webgpu-<adapter>.json.
 *
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx benchmarks/webgpu.ts
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx benchmarks/webgpu.ts --reps 3
 *
 * Shapes stay small so a CPU Vulkan driver finishes in well under two minutes; bigger matmuls are
 * added only when the 512 case runs fast.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';
import type { WebGPUBackend } from '../packages/tensor-core/src/backends/webgpu/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const reps = Number(opt('reps') ?? 5);

interface Result {
  case: string;
  dtype: string;
  flops: number;
  runs_ms: number[];
  median_ms: number;
  gflops: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const be = (await k.useBackend('webgpu')) as WebGPUBackend;
console.log(`adapter: ${be.adapterName} (shader-f16: ${be.caps.f16})`);
const results: Result[] = [];

async function bench(name: string, dtype: 'float32' | 'float16', flops: number, make: () => Tensor[], op: (...xs: Tensor[]) => Tensor): Promise<Result> {
  const inputs = make().map((t) => t.to(dtype));
  const once = async (): Promise<number> => {
    await be.sync();
    const t0 = performance.now();
    const y = k.tidy(() => op(...inputs));
    await be.sync();
    const dt = performance.now() - t0;
    y.dispose();
    return dt;
  };
  await once(); // warm-up: pipeline compilation, pool fill
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) runs.push(await once());
  inputs.forEach((t) => t.dispose());
  const m = median(runs);
  const r = { case: name, dtype, flops, runs_ms: runs.map((x) => +x.toFixed(3)), median_ms: +m.toFixed(3), gflops: +(flops / m / 1e6).toFixed(3) };
  console.log(`${name.padEnd(40)} ${dtype.padEnd(8)} ${m.toFixed(2).padStart(10)} ms ${r.gflops.toFixed(2).padStart(8)} GFLOP/s`);
  results.push(r);
  return r;
}

const mm = (n: number, dtype: 'float32' | 'float16' = 'float32') =>
  bench(`matmul ${n}x${n}x${n}`, dtype, 2 * n ** 3, () => [k.randn([n, n], { seed: 1 }), k.randn([n, n], { seed: 2 })], (a, b) => a.matmul(b));

await mm(256);
const r512 = await mm(512);
if (r512.median_ms < 500) await mm(1024);
await bench('matmul 512 (Aᵀ·B, strided)', 'float32', 2 * 512 ** 3, () => [k.randn([512, 512], { seed: 1 }), k.randn([512, 512], { seed: 2 })], (a, b) =>
  a.t().matmul(b),
);
await bench('matmul 16x4096x16 (split-K)', 'float32', 2 * 16 * 4096 * 16, () => [k.randn([16, 4096], { seed: 1 }), k.randn([4096, 16], { seed: 2 })], (a, b) =>
  a.matmul(b),
);
if (be.caps.f16) await mm(512, 'float16');

const [cN, cC, cH, cO] = [1, 64, 32, 64];
const convFlops = 2 * cN * cO * cC * 9 * cH * cH;
await bench(`conv2d 3x3 [${cN},${cC},${cH},${cH}]→${cO}`, 'float32', convFlops, () => [k.randn([cN, cC, cH, cH], { seed: 1 }), k.randn([cO, cC, 3, 3], { seed: 2 })], (x, w) =>
  k.conv2d(x, w, null, { padding: 1 }),
);
{
  // Forward + input and weight gradients (3× the forward's FLOPs).
  const x = k.randn([cN, cC, cH, cH], { seed: 1 });
  const w = k.randn([cO, cC, 3, 3], { seed: 2 });
  await bench(`conv2d 3x3 fwd+bwd [${cN},${cC},${cH},${cH}]→${cO}`, 'float32', 3 * convFlops, () => [x, w], (xi, wi) => {
    const xr = xi.detach().requiresGrad_(true);
    const wr = wi.detach().requiresGrad_(true);
    k.conv2d(xr, wr, null, { padding: 1 }).sum().backward();
    return k.keep(wr.grad!);
  });
}

const [aB, aH, aL, aE] = [1, 8, 256, 64];
await bench(`attention B${aB} H${aH} L${aL} E${aE}`, 'float32', 4 * aB * aH * aL * aL * aE, () => [1, 2, 3].map((s) => k.randn([aB, aH, aL, aE], { seed: s })), (q, kk, v) =>
  k.scaledDotProductAttention(q, kk, v),
);

const slug = be.adapterName.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
const file = join(here, 'results', `webgpu-${slug}.json`);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(
  file,
  JSON.stringify({ adapter: be.adapterName, shaderF16: be.caps.f16, reps, date: new Date().toISOString(), node: process.version, results }, null, 2) + '\n',
);
console.log(`wrote ${file}`);
be.dispose();
process.exit(0);
