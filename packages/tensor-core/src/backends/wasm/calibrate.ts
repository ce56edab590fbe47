/**
 * What this engine can reach on this machine: SIMD128 multiply-add throughput and memory copy
 * bandwidth, on 1 thread and on all of the engine's threads, timed with the same worker pool as the
 * kernels. Benchmarks divide by these figures to report efficiencies that mean the same on any CPU.
 */
import { peakFlops } from './kernels.js';
import type { Engine } from './pool.js';

/** Calibration figures of one thread count. @example const c = await wasm.calibrate(); c.perThreads[0].gflops; */
export interface CalibrationPoint {
  threads: number;
  /**
   * Best f32 GFLOP/s over the repetitions of independent f32x4 multiply-adds (the GEMM's own
   * instruction). The best, not the median: it is what the machine can do, and other load on a
   * shared machine only lowers a repetition, so efficiencies against it are never inflated.
   */
  gflops: number;
  /** Best GB/s of a 64 MiB copy (bytes read + bytes written). */
  copyGBs: number;
  gflopsMedian: number;
  copyMedian: number;
  /** The per-repetition figures. */
  gflopsRuns: number[];
  copyRuns: number[];
}

/** Calibration of an engine: the figures for 1 thread and for all threads. @example const { relaxed, perThreads } = await wasm.calibrate(); */
export interface Calibration {
  /** Whether the multiply-add is relaxed-SIMD FMA (else f32x4.mul + f32x4.add). */
  relaxed: boolean;
  perThreads: CalibrationPoint[];
}

/** Options of `calibrate`. @example await wasm.calibrate({ reps: 7, ms: 100 }); */
export interface CalibrateOptions {
  /** Repetitions per figure (median taken); default 5. */
  reps?: number;
  /** Target duration of one FMA repetition in milliseconds; default 60. */
  ms?: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const COPY_BYTES = 64 << 20;

/** Measures the engine's peak figures (allocates ~128 MiB of scratch while it runs). */
export function calibrate(engine: Engine, options: CalibrateOptions = {}): Calibration {
  const reps = Math.max(1, options.reps ?? 5);
  const targetMs = Math.max(5, options.ms ?? 60);
  const counts = [...new Set([1, engine.threads])];
  engine.reset();
  const out = engine.alloc(16 * engine.threads);
  const src = engine.alloc(COPY_BYTES);
  const dst = engine.alloc(COPY_BYTES);
  const time = (fields: number[], T: number): number => {
    const d = engine.desc(fields);
    const t0 = performance.now();
    engine.run('task_peak_fma', d, T);
    return performance.now() - t0;
  };
  // Size the FMA loop for about targetMs on one thread.
  let iters = 1 << 16;
  for (let ms = time([iters, out, 0, 0, 0], 1); ms < targetMs / 4; ms = time([iters, out, 0, 0, 0], 1)) iters *= 4;
  iters = Math.max(1, Math.round((iters * targetMs) / Math.max(1e-3, time([iters, out, 0, 0, 0], 1))));
  const perThreads = counts.map((T) => {
    const gflopsRuns: number[] = [];
    const copyRuns: number[] = [];
    for (let r = 0; r < reps; r++) {
      gflopsRuns.push((peakFlops(iters) * T) / time([iters, out, 0, 0, 0], T) / 1e6);
      const copies = 4;
      const d = engine.desc([copies, 0, src, dst, COPY_BYTES]);
      engine.run('task_peak_copy', d, T); // touch both buffers first
      const t0 = performance.now();
      engine.run('task_peak_copy', d, T);
      copyRuns.push((2 * COPY_BYTES * copies) / (performance.now() - t0) / 1e6);
    }
    return {
      threads: T,
      gflops: Math.max(...gflopsRuns),
      copyGBs: Math.max(...copyRuns),
      gflopsMedian: median(gflopsRuns),
      copyMedian: median(copyRuns),
      gflopsRuns,
      copyRuns,
    };
  });
  engine.reset();
  return { relaxed: engine.relaxed, perThreads };
}
