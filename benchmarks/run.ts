/**
 * Kiln's benchmark suite: every case on every available Kiln backend and, in the same run,
 * PyTorch CPU (benchmarks/torch_bench.py under /usr/bin/python3) at the same thread count.
 * Writes results/latest.json and prints a table.
 *
 *   pnpm bench                      # all cases, threads = cores
 *   pnpm bench -- --threads 2 --reps 5 --cases gemm_1024,conv2d_3x3_fwd_bwd --no-torch
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '../packages/tensor-core/src/index.ts';
import { createWasmBackend } from '../packages/tensor-core/src/backends/wasm/index.ts';
import { CASES } from './cases.ts';
import type { BenchCase } from './cases.ts';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const threads = Number(opt('threads') ?? process.env.KILN_WASM_THREADS ?? availableParallelism());
const reps = Number(opt('reps') ?? 5);
const only = opt('cases')?.split(',');
const noTorch = args.includes('--no-torch');
const backends = (opt('backends') ?? 'wasm,cpu').split(',');

export interface Entry {
  case: string;
  backend: string;
  threads: number;
  median_ms: number | null;
  runs_ms: number[];
  gflops: number | null;
  torch_median_ms: number | null;
  ratio_vs_torch: number | null;
  note?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeCase(c: BenchCase, backend: string): Promise<number[]> {
  await k.useBackend(backend);
  const state = c.setup();
  const n = c.heavy ? Math.max(3, Math.ceil(reps / 2)) : reps;
  const runs: number[] = [];
  for (let i = 0; i <= n; i++) {
    const t0 = performance.now();
    await c.run(state);
    const dt = performance.now() - t0;
    if (i > 0) runs.push(dt); // first run is warm-up (tier-up, scratch growth)
  }
  c.teardown?.(state);
  return runs;
}

function torchTimes(cases: string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (noTorch || cases.length === 0) return out;
  const r = spawnSync('/usr/bin/python3', [join(here, 'torch_bench.py'), '--threads', String(threads), '--reps', String(reps), ...cases], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    console.error(`torch_bench.py failed (${r.status}): ${r.stderr.slice(-2000)}`);
  }
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const j = JSON.parse(line) as { case: string; median_ms: number };
    out.set(j.case, j.median_ms);
  }
  return out;
}

async function main(): Promise<void> {
  const wasm = await createWasmBackend({ threads });
  k.registerBackend('wasm', () => wasm);
  const cases = CASES.filter((c) => !only || only.includes(c.name));
  const entries: Entry[] = [];
  const torch = new Map<string, number>();
  for (const c of cases) {
    for (const b of backends) {
      if (b === 'cpu' && c.skipCpu) {
        entries.push({ case: c.name, backend: b, threads: 1, median_ms: null, runs_ms: [], gflops: null, torch_median_ms: null, ratio_vs_torch: null, note: `skipped: ${c.skipCpu}` });
        continue;
      }
      const runs = await timeCase(c, b);
      const med = median(runs);
      entries.push({ case: c.name, backend: b, threads: b === 'wasm' ? wasm.threads : 1, median_ms: med, runs_ms: runs, gflops: c.flops ? c.flops / med / 1e6 : null, torch_median_ms: null, ratio_vs_torch: null });
      console.error(`${c.name} on ${b}: ${med.toFixed(2)} ms`);
    }
    // PyTorch right after, so both sides see the same machine load.
    for (const [name, ms] of torchTimes([c.name])) {
      torch.set(name, ms);
      console.error(`${name} on torch-cpu: ${ms.toFixed(2)} ms`);
    }
  }
  await k.useBackend('cpu');
  wasm.dispose();
  for (const e of entries) {
    const t = torch.get(e.case);
    if (t === undefined) continue;
    e.torch_median_ms = t;
    // Throughput ratio Kiln/PyTorch (> 1: Kiln is faster).
    if (e.median_ms !== null) e.ratio_vs_torch = t / e.median_ms;
  }
  for (const c of cases) {
    const t = torch.get(c.name);
    if (t !== undefined) entries.push({ case: c.name, backend: 'torch-cpu', threads, median_ms: t, runs_ms: [], gflops: c.flops ? c.flops / t / 1e6 : null, torch_median_ms: t, ratio_vs_torch: 1 });
  }
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    threads,
    relaxedSimd: wasm.engine.relaxed,
    kernel: wasm.engine.config,
    notes: 'ratio_vs_torch = torch_median_ms / median_ms (throughput of the Kiln backend relative to PyTorch CPU at the same thread count). gflops for attention fwd+bwd count 3.5x the forward FLOPs (2 matmuls forward, 5 backward).',
    entries,
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  const rows = [['case', 'backend', 'threads', 'median ms', 'GFLOP/s', 'torch ms', 'Kiln/torch']];
  for (const e of entries) {
    rows.push([
      e.case,
      e.backend,
      String(e.threads),
      e.median_ms === null ? (e.note ?? '-') : e.median_ms.toFixed(2),
      e.gflops === null ? '-' : e.gflops.toFixed(1),
      e.torch_median_ms === null ? '-' : e.torch_median_ms.toFixed(2),
      e.ratio_vs_torch === null ? '-' : `${(e.ratio_vs_torch * 100).toFixed(0)}%`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const table = rows.map((r) => `| ${r.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`);
  table.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  const text = `Kiln benchmarks, ${result.date}, ${threads} thread(s), relaxed SIMD ${result.relaxedSimd ? 'on' : 'off'}\n\n${table.join('\n')}\n`;
  writeFileSync(join(here, 'results', 'latest.md'), text);
  console.log(text);
}

await main();
