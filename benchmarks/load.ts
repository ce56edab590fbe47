/**
 * Loading benchmark: peak memory while `CLIPTextModel.fromPretrained` loads SD 1.5's text encoder
 * (configs/sd15_text_encoder.json, 123M parameters, 492 MB in float32) from a safetensors file
 * that this script first writes with random weights. The goal (issue 8 §4) is a peak of at most
 * 1.1× the weight bytes: the model is built without initialisation (`skipInit`) and each tensor is
 * read into it in turn (`loadWeights`), instead of a random init plus a loaded copy (≈ 2×).
 *
 * The load runs in a fresh child process per backend, so its RSS high-water mark is its own.
 * Reported: `k.memory().peakBytes` above the baseline (bytes of backend storage) and the process
 * RSS high-water mark above the RSS before loading (which also counts the JS read buffer of the
 * tensor in flight and garbage not yet collected).
 *
 *   pnpm --filter @kiln/benchmarks bench:load [--backends cpu,wasm]     (needs ~2 GB free RAM)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { skipInit } from '@kiln/nn';
import { saveSafetensors } from '@kiln/nn/node';
import { CLIPTextModel } from '@kiln/clip';

const here = dirname(fileURLToPath(import.meta.url));
const config = JSON.parse(readFileSync(join(here, 'configs', 'sd15_text_encoder.json'), 'utf8')) as Record<string, unknown>;
const GOAL = 1.1;

interface Measurement {
  backend: string;
  weight_bytes: number;
  peak_bytes: number;
  peak_ratio: number;
  rss_peak_increase_bytes: number;
  rss_ratio: number;
  load_ms: number;
}

/** Child: load the folder on one backend and print one JSON line. */
async function measure(folder: string, backend: string): Promise<void> {
  await k.useBackend(backend);
  const rss0 = process.memoryUsage().rss;
  const base = k.memory().liveBytes;
  k.resetPeakMemory();
  const t0 = performance.now();
  const model = await CLIPTextModel.fromPretrained(folder);
  const loadMs = performance.now() - t0;
  const peak = k.memory().peakBytes - base;
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const weightBytes = Object.values(model.stateDict()).reduce((n, t) => n + t.numel() * k.itemSize(t.dtype), 0);
  const m: Measurement = {
    backend,
    weight_bytes: weightBytes,
    peak_bytes: peak,
    peak_ratio: peak / weightBytes,
    rss_peak_increase_bytes: Math.max(0, maxRss - rss0),
    rss_ratio: Math.max(0, maxRss - rss0) / weightBytes,
    load_ms: loadMs,
  };
  console.log(JSON.stringify(m));
}

/** A fast deterministic fill (xorshift32), so writing 492 MB of random weights takes seconds. */
function randomWeights(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32 - 0.5) * 0.04;
  }
  return out;
}

/** Parent: write the folder once, then measure each backend in its own process. */
async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const backends = (arg('--backends') ?? 'cpu,wasm').split(',');
  const folder = mkdtempSync(join(tmpdir(), 'kiln-bench-load-'));
  try {
    const shapes = skipInit(() => new CLIPTextModel(config));
    const weights = new Map<string, k.Tensor>();
    let seed = 1;
    for (const [key, t] of Object.entries(shapes.stateDict()))
      weights.set(key, k.tensor(randomWeights(t.numel(), seed++), { shape: t.shape }));
    await saveSafetensors(join(folder, 'model.safetensors'), weights, { format: 'pt' });
    writeFileSync(join(folder, 'config.json'), JSON.stringify(config));
    weights.forEach((t) => t.dispose());
    shapes.dispose();

    const results: Measurement[] = [];
    for (const backend of backends) {
      const out = execFileSync(
        process.execPath,
        [...process.execArgv, fileURLToPath(import.meta.url), '--measure', folder, '--backend', backend],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 20,
        },
      );
      const m = JSON.parse(out.trim().split('\n').pop()!) as Measurement;
      results.push(m);
      console.log(
        `${backend}: ${(m.weight_bytes / 1e6).toFixed(1)} MB of weights loaded in ${(m.load_ms / 1000).toFixed(2)} s; ` +
          `peak ${(m.peak_bytes / 1e6).toFixed(1)} MB = ${m.peak_ratio.toFixed(3)}× (goal ≤ ${GOAL}×), ` +
          `RSS +${(m.rss_peak_increase_bytes / 1e6).toFixed(1)} MB = ${m.rss_ratio.toFixed(3)}×`,
      );
    }
    const result = {
      date: new Date().toISOString(),
      case: 'load_sd15_text_encoder',
      goal_peak_ratio: GOAL,
      node: process.version,
      results,
    };
    mkdirSync(join(here, 'results'), { recursive: true });
    writeFileSync(join(here, 'results', 'load.json'), `${JSON.stringify(result, null, 2)}\n`);
    if (results.some((m) => m.peak_ratio > GOAL)) process.exitCode = 1;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const measureFolder = process.argv.indexOf('--measure');
if (measureFolder >= 0) await measure(process.argv[measureFolder + 1], process.argv[process.argv.indexOf('--backend') + 1]);
else await main();
