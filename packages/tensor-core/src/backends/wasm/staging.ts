/**
 * Where a kernel finds its operands and puts its result: in place when the tensor lies in the
 * engine's heap, else copied between its storage (a typed array outside wasm memory) and the
 * engine's scratch. Also the descriptor call every GEMM user makes. One `Scratch` per backend; a
 * kernel calls `engine.reset()` and then stages its operands bottom-up.
 */
import type { View } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { contiguousStrides, isContiguous, numel } from '../../shape.js';
import { offsets } from '../cpu/strided.js';
import type { CpuView } from '../cpu/strided.js';
import { GEMM, gemmWorkspaceBytes, packedBBytes } from './kernels.js';
import type { Engine } from './pool.js';

// The wasm backend's views are the cpu backend's: typed arrays, large f32 ones in the engine's heap.
export type WView = CpuView;

const f32bits = new Float32Array(1);
const i32bits = new Int32Array(f32bits.buffer);
/** An f32 as the i32 bits a descriptor slot holds. */
export const bitsOf = (v: number): number => {
  f32bits[0] = v;
  return i32bits[0];
};

/** A view's elements in logical order as one Float32Array (no copy when contiguous). */
export function contig(v: WView): Float32Array {
  const s = v.storage as Float32Array;
  const n = numel(v.shape);
  const idx = offsets(v.shape, v.strides, v.offset);
  if (idx === null) return s.subarray(v.offset, v.offset + n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = s[idx[i]];
  return out;
}

/** An int32 view's elements in logical order. */
export function contigI32(v: WView): Int32Array {
  const s = v.storage as Int32Array;
  const n = numel(v.shape);
  const idx = offsets(v.shape, v.strides, v.offset);
  if (idx === null) return s.subarray(v.offset, v.offset + n);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = s[idx[i]];
  return out;
}

export const isF32 = (...vs: (View<TypedArray> | null)[]): boolean => vs.every((v) => v === null || v.dtype === 'float32');

/** Per-thread workspaces: base address and the stride between threads (bytes). */
export interface Workspaces {
  ws: number;
  stride: number;
}

/** One GEMM call: A [M, K], B [K, N], C [M, N] at byte addresses, element strides, `batch` matrices. */
export interface GemmSpec {
  A: number;
  rsA: number;
  csA: number;
  bsA: number;
  B: number;
  rsB: number;
  csB: number;
  bsB: number;
  C: number;
  ldc: number;
  bsC: number;
  M: number;
  N: number;
  K: number;
  batch: number;
  /** C += A·B instead of C = A·B. */
  acc: boolean;
  ws: Workspaces;
}

/**
 * Rows from which a one-matrix GEMM on several threads shares one packed B (below, the row slabs
 * get too thin for the threads to split them into balanced parts).
 */
const SHARED_B_MIN_M = 128;

export class Scratch {
  private readonly wsBytes: number;
  constructor(readonly engine: Engine) {
    this.wsBytes = Math.ceil(gemmWorkspaceBytes(engine.config) / 64) * 64;
  }

  /** Copies `src` into the engine's memory at byte address `ptr` (a move within it when `src` lies in the heap). */
  place(src: Float32Array, ptr: number): void {
    const at = this.engine.heapAddr(src);
    if (at === ptr) return;
    if (at >= 0) this.engine.f32.copyWithin(ptr / 4, at / 4, at / 4 + src.length);
    else this.engine.f32.set(src, ptr / 4);
  }

  /**
   * A view's base address and element strides for a kernel that only reads it: where it lies
   * in the heap, else a copy of the storage range it touches in scratch.
   */
  stage(v: WView): { ptr: number; strides: number[] } {
    const e = this.engine;
    const at = this.engine.heapAddr(v.storage as Float32Array);
    if (at >= 0) return { ptr: at + v.offset * 4, strides: [...v.strides] };
    const n = numel(v.shape);
    let lo = v.offset;
    let hi = v.offset;
    v.shape.forEach((d, i) => {
      if (d > 1) {
        const s = v.strides[i];
        if (s >= 0) hi += (d - 1) * s;
        else lo += (d - 1) * s;
      }
    });
    const span = hi - lo + 1;
    const s = v.storage as Float32Array;
    if (n > 0 && span <= 2 * n + 4096) {
      const p = e.alloc(span * 4);
      e.f32.set(s.subarray(lo, hi + 1), p / 4);
      return { ptr: p + (v.offset - lo) * 4, strides: [...v.strides] };
    }
    const p = e.alloc(Math.max(1, n) * 4);
    e.f32.set(contig(v), p / 4);
    return { ptr: p, strides: contiguousStrides(v.shape) };
  }

  /** A view as a contiguous block for a kernel that only reads it (in place where it can be). */
  stageContig(v: WView): number {
    const at = this.engine.heapAddr(v.storage as Float32Array);
    if (at >= 0 && isContiguous(v.shape, v.strides)) return at + v.offset * 4;
    const p = this.engine.alloc(Math.max(1, numel(v.shape)) * 4);
    this.engine.f32.set(contig(v), p / 4);
    return p;
  }

  /** One GEMM workspace per thread, each with `extra` bytes after it. */
  workspaces(extra = 0): Workspaces {
    const stride = this.wsBytes + Math.ceil(extra / 64) * 64;
    return { ws: this.engine.alloc(stride * this.engine.threads), stride };
  }

  gemm(s: GemmSpec): void {
    const f = new Array<number>(20).fill(0);
    const G = GEMM;
    f[G.A] = s.A;
    f[G.rsA] = s.rsA;
    f[G.csA] = s.csA;
    f[G.bsA] = s.bsA;
    f[G.B] = s.B;
    f[G.rsB] = s.rsB;
    f[G.csB] = s.csB;
    f[G.bsB] = s.bsB;
    f[G.C] = s.C;
    f[G.ldc] = s.ldc;
    f[G.bsC] = s.bsC;
    f[G.M] = s.M;
    f[G.N] = s.N;
    f[G.K] = s.K;
    f[G.batch] = s.batch;
    f[G.acc] = s.acc ? 1 : 0;
    f[G.ws] = s.ws.ws;
    f[G.wsStride] = s.ws.stride;
    f[G.next] = 0; // the chunk counter task_gemm's threads claim work from
    // ~40 GFLOP/s on one thread: the estimate that decides whether the workers are worth waking.
    const us = (2 * s.M * s.N * s.K * s.batch) / 40e3;
    const e = this.engine;
    const T = e.threadsFor(us);
    if (T > 1 && s.batch === 1 && s.M >= SHARED_B_MIN_M) {
      // One product across threads: B packed once, by all threads, into scratch freed right after;
      // the threads then split the rows (without this, each column slab re-packs all of A).
      const mark = e.mark();
      f[G.pb] = e.alloc(packedBBytes(e.config, s.K, s.N));
      const d = e.desc(f);
      e.run('task_gemm_packb', d, T);
      e.run('task_gemm', d, T);
      e.release(mark);
      return;
    }
    e.run('task_gemm', e.desc(f), T);
  }

  /** Where a kernel writes a result for `out`: `out` itself in the heap, else scratch (then `copyOut`). */
  target(out: Float32Array): number {
    const at = this.engine.heapAddr(out);
    return at >= 0 ? at : this.engine.alloc(out.length * 4);
  }

  /** Copies a kernel's result at `ptr` into `out`, unless it is already there (`target`). */
  copyOut(ptr: number, out: Float32Array): Float32Array {
    if (this.engine.heapAddr(out) !== ptr) out.set(this.engine.f32.subarray(ptr / 4, ptr / 4 + out.length));
    return out;
  }
}
