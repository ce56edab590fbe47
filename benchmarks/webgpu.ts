/**
 * Throughput of the webgpu backend's main kernels on whatever adapter Dawn finds: matmul, 3×3
 * conv2d (forward and both gradients), fused attention and the fused gradients of attention,
 * layerNorm and groupNorm+SiLU (the kernels alone, and forward + backward through autograd with
 * the fused gradient and with the op layer's composite gradient in its place),
 * median of several timed runs after a warm-up (which compiles the pipelines). Writes
 * results/webgpu-<adapter>.json. Attention FLOPs follow FlashAttention's count: forward
 * 4·B·H·L²·E, backward 2.5× that; norm cases report memory throughput (GB/s) instead.
 *
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx benchmarks/webgpu.ts
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx benchmarks/webgpu.ts --reps 3
 *
 * Shapes stay small so a CPU Vulkan driver finishes in well under two minutes; bigger matmuls are
 * added only when the 512 case runs fast.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import type { Tensor, View } from '@kiln/tensor-core';
import type { GpuStorage, WebGPUBackend } from '../packages/tensor-core/src/backends/webgpu/index.ts';

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
  /** Bytes the kernels must move at least (memory-bound cases). */
  bytes?: number;
  gbps?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const loadStart = +loadavg()[0].toFixed(2);
const be = (await k.useBackend('webgpu')) as WebGPUBackend;
console.log(`adapter: ${be.adapterName} (shader-f16: ${be.caps.f16})`);
const results: Result[] = [];

/** Times `run` (which encodes GPU work and returns what to free afterwards): warm-up, then `reps` runs. */
async function measure(name: string, dtype: string, flops: number, run: () => () => void, bytes?: number): Promise<Result> {
  const once = async (): Promise<number> => {
    await be.sync();
    const t0 = performance.now();
    const release = run();
    await be.sync();
    const dt = performance.now() - t0;
    release();
    return dt;
  };
  await once(); // warm-up: pipeline compilation, pool fill
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) runs.push(await once());
  const m = median(runs);
  const r: Result = {
    case: name,
    dtype,
    flops,
    runs_ms: runs.map((x) => +x.toFixed(3)),
    median_ms: +m.toFixed(3),
    gflops: +(flops / m / 1e6).toFixed(3),
  };
  if (bytes !== undefined) Object.assign(r, { bytes, gbps: +(bytes / m / 1e6).toFixed(3) });
  const rate = bytes !== undefined ? `${r.gbps!.toFixed(3).padStart(8)} GB/s` : `${r.gflops.toFixed(2).padStart(8)} GFLOP/s`;
  console.log(`${name.padEnd(48)} ${dtype.padEnd(8)} ${m.toFixed(2).padStart(10)} ms ${rate}`);
  results.push(r);
  return r;
}

async function bench(
  name: string,
  dtype: 'float32' | 'float16',
  flops: number,
  make: () => Tensor[],
  op: (...xs: Tensor[]) => Tensor,
  bytes?: number,
): Promise<Result> {
  const inputs = make().map((t) => t.to(dtype));
  const r = await measure(
    name,
    dtype,
    flops,
    () => {
      const y = k.tidy(() => op(...inputs));
      return () => y.dispose();
    },
    bytes,
  );
  inputs.forEach((t) => t.dispose());
  return r;
}

/** Times a backend kernel called directly (its storages are freed after each run). */
async function benchKernel(
  name: string,
  dtype: 'float32' | 'float16',
  flops: number,
  inputs: Tensor[],
  call: (...views: View<GpuStorage>[]) => readonly (GpuStorage | null)[],
  bytes?: number,
): Promise<Result> {
  const xs = inputs.map((t) => t.to(dtype));
  const r = await measure(
    name,
    dtype,
    flops,
    () => {
      const outs = call(...xs.map((t) => t._view() as View<GpuStorage>));
      return () => outs.forEach((s) => s && be.free(s));
    },
    bytes,
  );
  xs.forEach((t) => t.dispose());
  inputs.forEach((t) => t.dispose());
  return r;
}

/** Runs `fn` with the backend's fused `name` kernel hidden, so autograd takes the op layer's composite. */
async function withoutKernel<T>(name: 'attentionBackward' | 'layerNormBackward' | 'groupNormBackward', fn: () => Promise<T>): Promise<T> {
  Object.defineProperty(be, name, { value: undefined, configurable: true, writable: true });
  try {
    return await fn();
  } finally {
    delete (be as unknown as Record<string, unknown>)[name];
  }
}

/** Forward + backward through autograd; returns the input gradient so the whole graph runs. */
const fwdBwd =
  (f: (...xs: Tensor[]) => Tensor) =>
  (...xs: Tensor[]): Tensor => {
    const leaves = xs.map((x) => x.detach().requiresGrad_(true));
    f(...leaves)
      .sum()
      .backward();
    return k.keep(leaves[0].grad!);
  };

const mm = (n: number, dtype: 'float32' | 'float16' = 'float32') =>
  bench(
    `matmul ${n}x${n}x${n}`,
    dtype,
    2 * n ** 3,
    () => [k.randn([n, n], { seed: 1 }), k.randn([n, n], { seed: 2 })],
    (a, b) => a.matmul(b),
  );

await mm(256);
const r512 = await mm(512);
if (r512.median_ms < 500) await mm(1024);
await bench(
  'matmul 512 (Aᵀ·B, strided)',
  'float32',
  2 * 512 ** 3,
  () => [k.randn([512, 512], { seed: 1 }), k.randn([512, 512], { seed: 2 })],
  (a, b) => a.t().matmul(b),
);
await bench(
  'matmul 16x4096x16 (split-K)',
  'float32',
  2 * 16 * 4096 * 16,
  () => [k.randn([16, 4096], { seed: 1 }), k.randn([4096, 16], { seed: 2 })],
  (a, b) => a.matmul(b),
);
if (be.caps.f16) await mm(512, 'float16');

const [cN, cC, cH, cO] = [1, 64, 32, 64];
const convFlops = 2 * cN * cO * cC * 9 * cH * cH;
await bench(
  `conv2d 3x3 [${cN},${cC},${cH},${cH}]→${cO}`,
  'float32',
  convFlops,
  () => [k.randn([cN, cC, cH, cH], { seed: 1 }), k.randn([cO, cC, 3, 3], { seed: 2 })],
  (x, w) => k.conv2d(x, w, null, { padding: 1 }),
);
{
  // Forward + input and weight gradients (3× the forward's FLOPs).
  const x = k.randn([cN, cC, cH, cH], { seed: 1 });
  const w = k.randn([cO, cC, 3, 3], { seed: 2 });
  await bench(
    `conv2d 3x3 fwd+bwd [${cN},${cC},${cH},${cH}]→${cO}`,
    'float32',
    3 * convFlops,
    () => [x, w],
    (xi, wi) => {
      const xr = xi.detach().requiresGrad_(true);
      const wr = wi.detach().requiresGrad_(true);
      k.conv2d(xr, wr, null, { padding: 1 }).sum().backward();
      return k.keep(wr.grad!);
    },
  );
}

const [aB, aH, aL, aE] = [1, 8, 256, 64];
const attnFlops = 4 * aB * aH * aL * aL * aE;
const attnInputs = () => [1, 2, 3].map((s) => k.randn([aB, aH, aL, aE], { seed: s }));
await bench(`attention B${aB} H${aH} L${aL} E${aE}`, 'float32', attnFlops, attnInputs, (q, kk, v) => k.scaledDotProductAttention(q, kk, v));
for (const dtype of ['float32', ...(be.caps.f16 ? ['float16' as const] : [])] as const) {
  await benchKernel(
    `attentionBackward B${aB} H${aH} L${aL} E${aE} (kernel)`,
    dtype,
    2.5 * attnFlops,
    [...attnInputs(), k.randn([aB, aH, aL, aE], { seed: 4 })].map((t) => t.reshape([aB * aH, aL, aE])),
    (q, kk, v, g) => be.attentionBackward(q, kk, v, null, false, 1 / Math.sqrt(aE), g),
  );
}
const attnFwdBwd = fwdBwd((q, kk, v) => k.scaledDotProductAttention(q, kk, v));
await bench(`attention fwd+bwd B${aB} H${aH} L${aL} E${aE} (autograd)`, 'float32', 3.5 * attnFlops, attnInputs, attnFwdBwd);
await withoutKernel('attentionBackward', () =>
  bench(`attention fwd+bwd B${aB} H${aH} L${aL} E${aE} (composite backward)`, 'float32', 3.5 * attnFlops, attnInputs, attnFwdBwd),
);

// Norm gradients: memory-bound, so GB/s of the tensors they must read and write (x, gy, dx).
const [lnRows, lnD] = [1024, 320];
const lnBytes = 3 * lnRows * lnD * 4;
const lnInputs = () => [
  k.randn([lnRows, lnD], { seed: 1 }),
  k.randn([lnD], { seed: 2 }),
  k.randn([lnD], { seed: 3 }),
  k.randn([lnRows, lnD], { seed: 4 }),
];
await benchKernel(
  `layerNormBackward [${lnRows},${lnD}] (kernel)`,
  'float32',
  0,
  lnInputs(),
  (x, w, b, g) => be.layerNormBackward(x, w, b, lnD, 1e-5, g),
  lnBytes,
);
const lnFwdBwd = fwdBwd((x, w, b) => k.layerNorm(x, [lnD], w, b));
await bench(`layerNorm fwd+bwd [${lnRows},${lnD}] (autograd)`, 'float32', 0, () => lnInputs().slice(0, 3), lnFwdBwd, (5 * lnBytes) / 3);
await withoutKernel('layerNormBackward', () =>
  bench(
    `layerNorm fwd+bwd [${lnRows},${lnD}] (composite backward)`,
    'float32',
    0,
    () => lnInputs().slice(0, 3),
    lnFwdBwd,
    (5 * lnBytes) / 3,
  ),
);
const gnShape = [1, 320, 32, 32];
const gnN = gnShape.reduce((a, b) => a * b, 1);
const gnInputs = () => [
  k.randn(gnShape, { seed: 1 }),
  k.randn([320], { seed: 2 }),
  k.randn([320], { seed: 3 }),
  k.randn(gnShape, { seed: 4 }),
];
await benchKernel(
  `groupNormBackward+SiLU [${gnShape}] G32 (kernel)`,
  'float32',
  0,
  gnInputs(),
  (x, w, b, g) => be.groupNormBackward(x, 32, w, b, 1e-5, true, g),
  3 * gnN * 4,
);
const gnFwdBwd = fwdBwd((x, w, b) => k.groupNormSilu(x, 32, w, b, 1e-5));
await bench(`groupNorm+SiLU fwd+bwd [${gnShape}] G32 (autograd)`, 'float32', 0, () => gnInputs().slice(0, 3), gnFwdBwd, 5 * gnN * 4);
await withoutKernel('groupNormBackward', () =>
  bench(`groupNorm+SiLU fwd+bwd [${gnShape}] G32 (composite backward)`, 'float32', 0, () => gnInputs().slice(0, 3), gnFwdBwd, 5 * gnN * 4),
);

const slug = be.adapterName
  .toLowerCase()
  .replace(/[^a-z0-9]+/g, '-')
  .replace(/^-|-$/g, '')
  .slice(0, 60);
const file = join(here, 'results', `webgpu-${slug}.json`);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(
  file,
  JSON.stringify(
    // The load average says how busy the machine was (CPU drivers share its cores with everything else).
    {
      adapter: be.adapterName,
      shaderF16: be.caps.f16,
      reps,
      date: new Date().toISOString(),
      node: process.version,
      load_average_1m: { start: loadStart, end: +loadavg()[0].toFixed(2) },
      results,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${file}`);
be.dispose();
process.exit(0);
