/**
 * Streaming memory-bound kernels (the norms, AdamW) through scratch in chunks, double-buffered.
 *
 * Tensors live outside wasm memory, so every chunk is copied in and its results copied out, and
 * into or out of a *shared* memory V8 copies word by word (relaxed atomics): about 2.5× slower
 * than a plain copy, and only the calling thread can do it (workers cannot see the tensors). So
 * the copies of the neighbouring chunks run on the calling thread while the workers start on the
 * current one, and the calling thread joins the work afterwards (the kernels' threads claim work
 * from a counter, so a late thread simply takes less). On one thread, small chunks keep a chunk's
 * arrays in L2 between the copy in, the kernel's passes and the copy out; on several, chunks are
 * larger, since every chunk wakes the workers (tens of µs on a VM).
 */
import type { Engine } from './pool.js';

/**
 * Floats per staged array per chunk on one thread (512 KiB; on several threads twice that): the
 * best of 32K–1M on a quiet 2-vCPU EPYC for groupNorm(+SiLU), layerNorm forward and backward and
 * AdamW (`benchmarks/README.md`).
 */
export const STREAM_CHUNK_FLOATS = 1 << 17;

/**
 * A copy into or out of shared memory on the calling thread, µs per byte (~10 GB/s on a 2-vCPU
 * EPYC). Measured there: layerNorm forward + backward and AdamW, whose kernels cost less per byte
 * than this, ran slower on 2 threads than on 1; groupNorm+SiLU, which costs more, ran faster.
 */
const COPY_US_PER_BYTE = 1e-4;

/** One streamed op: contiguous arrays of `units × len` floats, cut into chunks of whole units. */
export interface StreamSpec {
  /** Arrays copied into scratch, chunk by chunk. */
  ins: Float32Array[];
  /** Further scratch arrays per chunk the kernel writes (no copy in). */
  extra?: number;
  /** Results: [slot, destination], slots numbered over `ins` then the extra arrays. */
  outs: [number, Float32Array][];
  units: number;
  len: number;
  /** Units per chunk are a multiple of this (e.g. a kernel's block of rows). */
  align?: number;
  /** Single-thread cost of one unit (µs), for `engine.threadsFor` over the whole op. */
  usPerUnit: number;
  /**
   * Runs one chunk with its slots' scratch addresses on `threads` threads; it must hand
   * `meanwhile` to `engine.run`, which runs it on the calling thread before that thread joins.
   */
  kernel(ptrs: number[], first: number, count: number, threads: number, meanwhile: () => void): void;
}

/** Runs a stream (see the module comment); allocates after whatever the caller staged since `reset()`. */
export function stream(e: Engine, s: StreamSpec): void {
  const align = s.align ?? 1;
  // The copies are the calling thread's alone: where they cost more than the kernel, a second
  // thread has nothing to overlap and only adds traffic between the cores' caches.
  const copyUs = (s.ins.length + s.outs.length) * s.len * 4 * COPY_US_PER_BYTE;
  const threads = s.usPerUnit > copyUs ? e.threadsFor(s.units * s.usPerUnit) : 1;
  const fit = Math.max(1, Math.floor(((threads > 1 ? 2 : 1) * STREAM_CHUNK_FLOATS) / s.len));
  const per = Math.min(s.units, Math.max(align, fit - (fit % align)));
  const chunks = Math.ceil(s.units / per);
  const slots = s.ins.length + (s.extra ?? 0);
  const sets = Array.from({ length: Math.min(2, chunks) }, () => Array.from({ length: slots }, () => e.alloc(per * s.len * 4)));
  const range = (c: number) => [c * per * s.len, Math.min(s.units, (c + 1) * per) * s.len];
  const copyIn = (c: number) => {
    const [a, b] = range(c);
    const f = e.f32;
    s.ins.forEach((src, i) => f.set(src.subarray(a, b), sets[c % 2][i] / 4));
  };
  const copyOut = (c: number) => {
    const [a, b] = range(c);
    const f = e.f32;
    for (const [slot, dst] of s.outs) {
      const p = sets[c % 2][slot] / 4;
      dst.set(f.subarray(p, p + b - a), a);
    }
  };
  copyIn(0);
  for (let c = 0; c < chunks; c++) {
    const first = c * per;
    s.kernel(sets[c % 2], first, Math.min(per, s.units - first), threads, () => {
      if (c > 0) copyOut(c - 1);
      if (c + 1 < chunks) copyIn(c + 1);
    });
  }
  copyOut(chunks - 1);
}
