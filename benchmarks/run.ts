/**
 * Kiln's benchmark suite: every case on every available Kiln backend and, in the same run,
 * PyTorch CPU (benchmarks/torch_bench.py under /usr/bin/python3) at the same thread count.
 * Writes results/latest.json and prints a table.
 *
 *   pnpm bench                      # all cases, threads = cores
 *   pnpm bench --threads 2 --reps 5 --cases gemm_1024,conv2d_3x3_fwd_bwd --no-torch
 *   pnpm bench --backends wasm,cpu,webgpu   # other Kiln backends join when they initialise
 *   pnpm bench --threads 1 --out latest-1thread --torch-pinned   # results/latest-1thread.{json,md}; PyTorch pinned
 *   pnpm bench --threads 2 --scaling --cases gemm_2048   # also 1 thread on the same engine, alternating: 2t ÷ 1t
 *
 * The cpu backend (the f64 reference) is skipped on the large cases (each case says why); the
 * webgpu backend has its own runner for small shapes, benchmarks/webgpu.ts.
 *
 * The run starts by calibrating the wasm engine (SIMD128 multiply-add peak and copy bandwidth on 1
 * and on all threads, same worker pool), and every wasm entry reports its efficiency against it.
 * PyTorch runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from its environment (OpenBLAS at
 * its best for this CPU), checked against float64; `--torch-pinned` keeps the inherited environment.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { CASES } from './cases.js';
import type { BenchCase } from './cases.js';

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
const torchPinned = args.includes('--torch-pinned');
/**
 * Thread scaling measured in pairs: every wasm run is followed by one on the calling thread alone
 * (same engine, memory and data), so the ratio does not depend on which minute each side ran in.
 */
const scaling = args.includes('--scaling');
/** Results file base name under results/ (default latest: latest.json and latest.md). */
const outName = opt('out') ?? 'latest';
/** Untimed warm-up per case: at least 2 runs of each side (1 for heavy cases), and more, up to WARM_MAX, until WARM_MS have passed. */
const WARM_MS = 400;
const WARM_MAX = 60;
/** Variables that pin OpenBLAS to one kernel set (set on some machines for old OpenBLAS builds). */
const OPENBLAS_PINS = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'];

export interface Entry {
  case: string;
  backend: string;
  threads: number;
  median_ms: number | null;
  runs_ms: number[];
  gflops: number | null;
  /** GB/s of the case's minimal memory traffic (bandwidth-bound cases). */
  gbps?: number | null;
  /** gflops ÷ the calibrated SIMD128 peak at this thread count, or gbps ÷ the calibrated copy bandwidth. */
  efficiency?: number | null;
  /**
   * Where the wasm backend executes fewer FLOPs than `gflops` counts (Winograd convolutions): the
   * GFLOP/s of the FLOPs it executes, and that ÷ the calibrated peak (cannot pass 100%).
   */
  executed_gflops?: number | null;
  executed_efficiency?: number | null;
  torch_median_ms: number | null;
  ratio_vs_torch: number | null;
  /** With --scaling: runs on the calling thread alone, each right after the run in `runs_ms`. */
  runs_1thread_ms?: number[];
  /** With --scaling: median over the pairs of (1-thread ms ÷ all-threads ms). */
  scaling?: number;
  note?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A persistent torch_bench.py --serve process: one run of a case per request. */
class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private buf = '';
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private failed: string | null = null;
  version = '';
  constructor(pinned: boolean) {
    // Passive OpenMP waits: idle PyTorch threads must not spin while the Kiln side is timed.
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' };
    // Unpinned: this child alone loses the OpenBLAS pins, so OpenBLAS picks its kernels for this CPU.
    if (!pinned) for (const v of OPENBLAS_PINS) delete env[v];
    this.proc = spawn('/usr/bin/python3', [join(here, 'torch_bench.py'), '--serve', '--threads', String(threads)], { env });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    let err = '';
    this.proc.stderr.on('data', (d) => (err += String(d)));
    this.proc.on('exit', (code) => {
      this.failed = `torch_bench.py exited (${code}): ${err.slice(-1500)}`;
      for (const w of this.waiting.splice(0)) w('');
    });
  }
  private next(): Promise<string> {
    const line = this.lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise<string>((resolve) => this.waiting.push(resolve));
  }
  /** The first line torch_bench.py answers: its sgemm check against float64 and the BLAS it runs. */
  async hello(): Promise<TorchInfo | null> {
    const line = await this.next();
    if (!line) {
      console.error(this.failed);
      return null;
    }
    return JSON.parse(line) as TorchInfo;
  }
  async run(name: string): Promise<number | null> {
    if (this.failed) return null;
    this.proc.stdin.write(`${name}\n`);
    const line = await this.next();
    if (!line) {
      console.error(this.failed);
      return null;
    }
    const j = JSON.parse(line) as { ms: number; torch: string; threads: number };
    this.version = `${j.torch} (${j.threads} threads)`;
    return j.ms;
  }
  close(): void {
    this.proc.stdin.end();
  }
}

interface TorchInfo {
  check_ok: boolean;
  max_rel_err: number;
  blas_core: string | null;
  pinned: Record<string, string>;
  torch: string;
  threads: number;
  blas_config: string;
  /** Set here: why this run uses the pinned environment although unpinned was asked for. */
  fallback?: string;
}

/**
 * PyTorch unpinned (or pinned with --torch-pinned); an unpinned process whose sgemm fails the
 * float64 check is replaced by a pinned one, and the result says so.
 */
async function startTorch(): Promise<{ server: TorchServer; info: TorchInfo | null }> {
  const server = new TorchServer(torchPinned);
  const info = await server.hello();
  if (torchPinned || !info || info.check_ok) return { server, info };
  server.close();
  const pinned = new TorchServer(true);
  const pinnedInfo = await pinned.hello();
  const why = `unpinned OpenBLAS (${info.blas_core}) failed the float64 sgemm check (max relative error ${info.max_rel_err.toExponential(2)}): pinned run used`;
  console.error(why);
  return { server: pinned, info: pinnedInfo && { ...pinnedInfo, fallback: why } };
}

/** CPU model and flags from /proc/cpuinfo (Linux), else what os.cpus() says. */
function cpuInfo(): { model: string; flags: string[]; logical: number } {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    text = '';
  }
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  return {
    model: field('model name') ?? cpus()[0]?.model ?? 'unknown',
    flags: (field('flags') ?? '').split(/\s+/).filter(Boolean),
    logical: availableParallelism(),
  };
}

/**
 * Times a case on a Kiln backend, alternating each run with a PyTorch run of the same case, and
 * with `solo` (a wasm engine of several threads) with a run on its calling thread alone.
 */
async function timeCase(
  c: BenchCase,
  backend: string,
  torch: TorchServer | null,
  solo: k.WasmBackend | null,
): Promise<{ kiln: number[]; torch: number[]; one: number[] }> {
  await k.useBackend(backend);
  const state = c.setup();
  const n = c.heavy ? Math.max(3, Math.ceil(reps / 2)) : reps;
  const kiln: number[] = [];
  const tt: number[] = [];
  const one: number[] = [];
  const timed = async () => {
    const t0 = performance.now();
    await c.run(state);
    return performance.now() - t0;
  };
  // Untimed warm-up, the same number of runs on each side: scratch growth, buffer pools and
  // allocators settle, and for short ops the JS around the kernels gets JIT-compiled (a 2 ms op's
  // first 20 calls in a fresh process take up to 2× longer), as in a training loop's steady state.
  const warmStart = performance.now();
  for (let w = 0; w < WARM_MAX && (w < (c.heavy ? 1 : 2) || performance.now() - warmStart < WARM_MS); w++) {
    await c.run(state);
    if (torch) await torch.run(c.name);
  }
  for (let i = 0; i < n; i++) {
    // After the other side's run, a Kiln op on 2 threads starts cold (gemm_512: 6.4 ms against
    // 4.2 back to back; a pause alone, with no other process, does the same). So each side's timed
    // run follows an untimed one of the same case, as ops follow each other in a training loop.
    if (torch) await c.run(state);
    const dt = await timed();
    let d1: number | null = null;
    if (solo) {
      // Every estimate counts as too small to wake a worker: the calling thread runs it all.
      const min = solo.engine.parallelMinUs;
      solo.engine.parallelMinUs = Number.POSITIVE_INFINITY;
      try {
        d1 = await timed();
      } finally {
        solo.engine.parallelMinUs = min;
      }
    }
    const td = torch ? (await torch.run(c.name), await torch.run(c.name)) : null;
    kiln.push(dt);
    if (d1 !== null) one.push(d1);
    if (td !== null) tt.push(td);
  }
  c.teardown?.(state);
  return { kiln, torch: tt, one };
}

async function main(): Promise<void> {
  k.registerWasmBackend({ threads });
  const wasm = (await k.initBackend('wasm')) as k.WasmBackend;
  const calibration = wasm.calibrate({ reps: Math.max(5, reps) });
  const peakAt = (T: number) =>
    calibration.perThreads.find((p) => p.threads === T) ?? calibration.perThreads[calibration.perThreads.length - 1];
  for (const p of calibration.perThreads)
    console.error(
      `wasm SIMD128 peak on ${p.threads} thread(s): ${p.gflops.toFixed(1)} GFLOP/s (median ${p.gflopsMedian.toFixed(1)}), copy ${p.copyGBs.toFixed(1)} GB/s`,
    );
  const cases = CASES.filter((c) => !only || only.includes(c.name));
  // Other Kiln backends (e.g. --backends wasm,cpu,webgpu) take part when they initialise here.
  const unavailable = new Map<string, string>();
  for (const b of backends) {
    if (b === 'wasm' || b === 'cpu') continue;
    try {
      await k.initBackend(b);
    } catch (err) {
      unavailable.set(b, (err as Error).message);
    }
  }
  const entries: Entry[] = [];
  const started = noTorch ? null : await startTorch();
  const torch = started?.server ?? null;
  if (started?.info)
    console.error(
      `PyTorch ${started.info.torch}: OpenBLAS ${started.info.blas_core ?? '?'}${Object.keys(started.info.pinned).length ? ` pinned ${JSON.stringify(started.info.pinned)}` : ' unpinned'}, sgemm vs float64 ${started.info.max_rel_err.toExponential(2)}`,
    );
  const torchRuns = new Map<string, number[]>();
  for (const c of cases) {
    for (const b of backends) {
      if (unavailable.has(b)) {
        entries.push({
          case: c.name,
          backend: b,
          threads: 1,
          median_ms: null,
          runs_ms: [],
          gflops: null,
          torch_median_ms: null,
          ratio_vs_torch: null,
          note: `unavailable: ${unavailable.get(b)}`,
        });
        continue;
      }
      if (b === 'cpu' && c.skipCpu) {
        entries.push({
          case: c.name,
          backend: b,
          threads: 1,
          median_ms: null,
          runs_ms: [],
          gflops: null,
          torch_median_ms: null,
          ratio_vs_torch: null,
          note: `skipped: ${c.skipCpu}`,
        });
        continue;
      }
      // PyTorch runs interleaved with the first backend's runs only (cpu is a reference, not a contender).
      const solo = scaling && b === 'wasm' && wasm.threads > 1 ? wasm : null;
      const r = await timeCase(c, b, b === backends[0] ? torch : null, solo);
      if (r.torch.length) torchRuns.set(c.name, r.torch);
      const med = median(r.kiln);
      const tmed = torchRuns.has(c.name) ? median(torchRuns.get(c.name)!) : null;
      const gflops = c.flops ? c.flops / med / 1e6 : null;
      const gbps = c.bytes ? c.bytes / med / 1e6 : null;
      const peak = peakAt(wasm.threads);
      const executed = b === 'wasm' && c.executedFlops ? c.executedFlops / med / 1e6 : null;
      entries.push({
        case: c.name,
        backend: b,
        threads: b === 'wasm' ? wasm.threads : 1,
        median_ms: med,
        runs_ms: r.kiln,
        gflops,
        gbps,
        efficiency: b !== 'wasm' ? null : gflops !== null ? gflops / peak.gflops : gbps !== null ? gbps / peak.copyGBs : null,
        ...(executed === null ? {} : { executed_gflops: executed, executed_efficiency: executed / peak.gflops }),
        torch_median_ms: tmed,
        // Throughput relative to PyTorch (> 1: Kiln is faster).
        ratio_vs_torch: tmed === null ? null : tmed / med,
        ...(r.one.length ? { runs_1thread_ms: r.one, scaling: median(r.one.map((t, i) => t / r.kiln[i])) } : {}),
      });
      console.error(`${c.name} on ${b}: ${med.toFixed(2)} ms${tmed === null ? '' : ` (torch ${tmed.toFixed(2)} ms)`}`);
    }
    const tr = torchRuns.get(c.name);
    if (tr) {
      const t = median(tr);
      entries.push({
        case: c.name,
        backend: 'torch-cpu',
        threads,
        median_ms: t,
        runs_ms: tr,
        gflops: c.flops ? c.flops / t / 1e6 : null,
        gbps: c.bytes ? c.bytes / t / 1e6 : null,
        torch_median_ms: t,
        ratio_vs_torch: 1,
      });
    }
  }
  torch?.close();
  await k.useBackend('cpu');
  wasm.dispose();
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    threads,
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${availableParallelism()}`,
    cpu_info: cpuInfo(),
    /** The wasm engine's measured ceilings in this run (efficiency denominators). */
    peak: calibration,
    torch: torch?.version ?? null,
    torch_blas: started?.info
      ? {
          ...started.info,
          blas_config: started.info.blas_config
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean),
        }
      : null,
    relaxedSimd: wasm.engine.relaxed,
    kernel: wasm.engine.config,
    notes:
      'Kiln and PyTorch runs alternate (one Kiln run, one PyTorch run of the same case), so both see the same load on a shared machine; before the timed runs both sides warm up alike, alternating untimed runs for 400 ms (at least 2 each, 1 for heavy cases, at most 60); each timed run follows an untimed run of the same case on the same side, so that neither starts with cold threads. ratio_vs_torch = torch_median_ms / median_ms (throughput of the Kiln backend relative to PyTorch CPU at the same thread count). gflops for attention fwd+bwd count 3.5x the forward FLOPs (2 matmuls forward, 5 backward). Convolution gflops are effective rates (direct-convolution FLOP count, 2·N·O·C·9·H·W per pass); the wasm backend runs 3x3 stride-1 convolutions as Winograd F(4x4,3x3), about 4x fewer multiplies, so their efficiency can pass 100%; executed_gflops / executed_efficiency count the FLOPs it executes (the 36 batched GEMMs and the transforms, about 3.8x fewer). With --scaling, each wasm run is followed by a run of the same case on the calling thread alone (the same engine, so the same shared memory), and scaling is the median over those pairs of 1-thread ms / all-threads ms.',
    entries,
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', `${outName}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const rows = [
    ['case', 'backend', 'threads', 'median ms', 'GFLOP/s', 'GB/s', 'efficiency', 'executed', 'torch ms', 'Kiln/torch', '÷ 1 thread'],
  ];
  for (const e of entries) {
    rows.push([
      e.case,
      e.backend,
      String(e.threads),
      e.median_ms === null ? (e.note ?? '-') : e.median_ms.toFixed(2),
      e.gflops === null ? '-' : e.gflops.toFixed(1),
      e.gbps == null ? '-' : e.gbps.toFixed(1),
      e.efficiency == null ? '-' : `${(e.efficiency * 100).toFixed(0)}%`,
      e.executed_efficiency == null ? '-' : `${e.executed_gflops!.toFixed(1)} (${(e.executed_efficiency * 100).toFixed(0)}%)`,
      e.torch_median_ms === null ? '-' : e.torch_median_ms.toFixed(2),
      e.ratio_vs_torch === null ? '-' : `${(e.ratio_vs_torch * 100).toFixed(0)}%`,
      e.scaling == null ? '-' : `${e.scaling.toFixed(2)}×`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const table = rows.map((r) => `| ${r.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`);
  table.splice(1, 0, `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  const peaks = calibration.perThreads
    .map((p) => `${p.threads} thread(s) ${p.gflops.toFixed(1)} GFLOP/s, copy ${p.copyGBs.toFixed(1)} GB/s`)
    .join('; ');
  const blas = started?.info
    ? `; PyTorch OpenBLAS ${started.info.blas_core ?? '?'} ${Object.keys(started.info.pinned).length ? 'pinned' : 'unpinned'}${started.info.fallback ? ' (fallback)' : ''}`
    : '';
  const text = `Kiln benchmarks, ${result.date}, ${result.cpu_info.model} × ${result.cpu_info.logical}, ${threads} thread(s), relaxed SIMD ${result.relaxedSimd ? 'on' : 'off'}\nwasm SIMD128 peak: ${peaks}${blas}\n\n${table.join('\n')}\n`;
  writeFileSync(join(here, 'results', `${outName}.md`), text);
  console.log(text);
}

await main();
