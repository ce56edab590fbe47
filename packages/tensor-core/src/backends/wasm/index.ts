/**
 * The `wasm` backend: GEMM, convolutions (Winograd F(4×4,3×3), 1×1 direct, im2col + GEMM),
 * flash-style attention, softmax, groupNorm(+SiLU), layerNorm, AdamW and large elementwise ops
 * run as emitted WebAssembly SIMD across worker threads; smaller or irregular f32 elementwise
 * work runs as tight JS loops on the tensor buffers; everything else falls back to the cpu
 * reference kernels. See README.md in this folder.
 *
 * Large f32 tensors live in a heap inside the engine's WebAssembly memory, where the kernels use
 * them in place; the rest (and what does not fit) in their own typed arrays like the cpu backend's,
 * so the sum of live tensors is not capped by wasm32: a kernel copies those operands into scratch
 * and its result out. This class dispatches: f32 work goes to the family modules beside it, the
 * rest to the cpu kernels.
 */
import type { AdamWHyper, Backend, BinaryOp, Conv2dParams, ReduceOp, UnaryOp } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { philoxFill } from '../../random.js';
import { contiguousStrides, isContiguous, numel } from '../../shape.js';
import { CpuBackend } from '../cpu/index.js';
import { adamwStep } from './adamw.js';
import { attentionBackward, attentionForward } from './attention.js';
import { pool } from './bufpool.js';
import { calibrate } from './calibrate.js';
import type { CalibrateOptions, Calibration } from './calibrate.js';
import { Convolutions } from './conv.js';
import { fastBinary, fastCopyInto, fastReduce, fastUnary, fastWhere } from './elementwise.js';
import { groupNormBackward, groupNormForward, layerNormBackward, layerNormForward, simdNormOk } from './norm.js';
import { Engine } from './pool.js';
import type { EngineOptions } from './pool.js';
import { simdBinary, simdUnary } from './simd-elementwise.js';
import { softmaxRows } from './softmax.js';
import { Scratch, contig, contigI32, isF32 } from './staging.js';
import type { WView } from './staging.js';

/** Options of the wasm backend (`registerWasmBackend`). @example k.registerWasmBackend({ threads: 4, winograd: false }); */
export interface WasmBackendOptions extends EngineOptions {
  /**
   * 3×3 stride-1 convolutions (and both gradients) through Winograd F(4×4, 3×3) when they have at
   * least 8 input and output channels (default true). 4× fewer multiplies; f32 rounding error grows
   * by a small constant factor (~1e-6 relative), so turn it off for bit-closer parity with im2col.
   */
  winograd?: boolean;
}

/** The wasm backend: kernels assembled at load time, run on a pool of threads. @example const wasm = (await k.useBackend('wasm')) as k.WasmBackend; */
export class WasmBackend implements Backend<TypedArray> {
  readonly name = 'wasm';
  private readonly cpu = new CpuBackend();
  private readonly scratch: Scratch;
  private readonly conv: Convolutions;

  constructor(
    readonly engine: Engine,
    options: WasmBackendOptions = {},
  ) {
    this.scratch = new Scratch(engine);
    this.conv = new Convolutions(this.scratch, options.winograd ?? true);
    // Storage the workers can be handed: they copy their own parts of streamed ops (`stream.ts`).
    if (engine.sharesStorage) pool.share(true);
    // Large tensors go into the engine's memory first, where the kernels use them in place.
    if (engine.heap) pool.useHeap(engine.heap, true);
  }

  get threads(): number {
    return this.engine.threads;
  }

  /**
   * Measures this engine's SIMD128 multiply-add peak and copy bandwidth on 1 and on all threads
   * (about a second), for efficiency figures.
   * @example const { perThreads } = wasm.calibrate(); console.log(perThreads.at(-1)?.gflops);
   */
  calibrate(options?: CalibrateOptions): Calibration {
    return calibrate(this.engine, options);
  }

  // ---- memory: large f32 tensors in the engine's heap, the rest typed arrays outside (see bufpool.ts) ----
  alloc(dtype: DType, size: number): TypedArray {
    return dtype === 'float32' ? pool.f32(size) : this.cpu.alloc(dtype, size);
  }
  upload(dtype: DType, data: TypedArray): TypedArray {
    if (dtype !== 'float32') return this.cpu.upload(dtype, data);
    const out = pool.f32(data.length);
    out.set(data);
    return out;
  }
  download(x: WView): Promise<TypedArray> {
    return this.cpu.download(x);
  }
  free(storage: TypedArray): void {
    if (storage instanceof Float32Array) pool.put(storage);
  }
  fill(dtype: DType, size: number, value: number): TypedArray {
    if (dtype !== 'float32') return this.cpu.fill(dtype, size, value);
    return pool.f32(size).fill(value);
  }
  random(dist: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], counter: number): TypedArray {
    if (dtype !== 'float32') return this.cpu.random(dist, dtype, size, key, counter);
    // Straight into a pooled buffer (one the workers can be handed), not via the cpu backend's array.
    const out = pool.f32(size);
    out.set(philoxFill(dist, new Float64Array(size), key, counter));
    return out;
  }

  // ---- elementwise and reductions: fast f32 paths, cpu fallback ----
  unary(op: UnaryOp, x: WView, outDtype: DType): TypedArray {
    return simdUnary(this.scratch, op, x, outDtype) ?? fastUnary(op, x, outDtype) ?? this.cpu.unary(op, x, outDtype);
  }
  binary(op: BinaryOp, a: WView, b: WView, outDtype: DType): TypedArray {
    return simdBinary(this.scratch, op, a, b, outDtype) ?? fastBinary(op, a, b, outDtype) ?? this.cpu.binary(op, a, b, outDtype);
  }
  where(cond: WView, a: WView, b: WView, outDtype: DType): TypedArray {
    return fastWhere(cond, a, b, outDtype) ?? this.cpu.where(cond, a, b, outDtype);
  }
  reduce(op: ReduceOp, x: WView, axes: readonly number[]): TypedArray {
    return fastReduce(op, x, axes) ?? this.cpu.reduce(op, x, axes);
  }
  copyInto(dst: WView, src: WView): void {
    if (!fastCopyInto(dst, src)) this.cpu.copyInto(dst, src);
  }
  gatherRows(table: WView, index: WView): TypedArray {
    if (table.dtype !== 'float32' || index.dtype !== 'int32' || !isContiguous(table.shape, table.strides))
      return this.cpu.gatherRows(table, index);
    // Row copies straight from the table (the reference kernel widens the whole table to f64).
    const [R, C] = table.shape;
    const ids = contigI32(index);
    const t = table.storage as Float32Array;
    const out = pool.f32(ids.length * C);
    for (let n = 0; n < ids.length; n++) {
      const r = ids[n];
      if (r < 0 || r >= R) throw new RangeError(`index ${r} is out of range for ${R} rows`);
      out.set(t.subarray(table.offset + r * C, table.offset + (r + 1) * C), n * C);
    }
    return out;
  }
  scatterAddRows(src: WView, index: WView, rows: number): TypedArray {
    if (src.dtype !== 'float32' || index.dtype !== 'int32') return this.cpu.scatterAddRows(src, index, rows);
    const C = src.shape[1];
    const s = contig(src);
    const ids = contigI32(index);
    const out = pool.f32(rows * C).fill(0);
    for (let n = 0; n < ids.length; n++) {
      const o = ids[n] * C;
      const i = n * C;
      for (let c = 0; c < C; c++) out[o + c] += s[i + c];
    }
    return out;
  }

  // ---- matmul ----
  matmul(a: WView, b: WView): TypedArray {
    if (!isF32(a, b)) return this.cpu.matmul(a, b);
    const [B, M, K] = a.shape;
    const N = b.shape[2];
    const out = pool.f32(B * M * N);
    if (out.length === 0) return out;
    const e = this.engine;
    const scratch = this.scratch;
    const per = (M * K + K * N + M * N) * 4 * 2;
    const chunk = Math.max(1, Math.min(B, Math.floor((1 << 30) / per)));
    for (let b0 = 0; b0 < B; b0 += chunk) {
      const nb = Math.min(chunk, B - b0);
      const sub = (v: WView): WView => ({ ...v, shape: [nb, v.shape[1], v.shape[2]], offset: v.offset + b0 * v.strides[0] });
      e.reset();
      const sa = scratch.stage(sub(a));
      const sb = scratch.stage(sub(b));
      const dst = out.subarray(b0 * M * N, (b0 + nb) * M * N);
      const c = scratch.target(dst);
      const ws = scratch.workspaces();
      scratch.gemm({
        A: sa.ptr,
        rsA: sa.strides[1],
        csA: sa.strides[2],
        bsA: nb > 1 ? sa.strides[0] : 0,
        B: sb.ptr,
        rsB: sb.strides[1],
        csB: sb.strides[2],
        bsB: nb > 1 ? sb.strides[0] : 0,
        C: c,
        ldc: N,
        bsC: M * N,
        M,
        N,
        K,
        batch: nb,
        acc: false,
        ws,
      });
      scratch.copyOut(c, dst);
    }
    return out;
  }

  // ---- convolutions (groups 1, f32) on the engine; the rest on the cpu kernels ----
  conv2d(x: WView, w: WView, p: Conv2dParams): TypedArray {
    return isF32(x, w) && p.groups === 1 ? this.conv.conv2d(x, w, p) : this.cpu.conv2d(x, w, p);
  }
  conv2dInputGrad(gy: WView, w: WView, inputShape: readonly number[], p: Conv2dParams): TypedArray {
    return isF32(gy, w) && p.groups === 1
      ? this.conv.conv2dInputGrad(gy, w, inputShape, p)
      : this.cpu.conv2dInputGrad(gy, w, inputShape, p);
  }
  conv2dWeightGrad(x: WView, gy: WView, weightShape: readonly number[], p: Conv2dParams): TypedArray {
    return isF32(x, gy) && p.groups === 1
      ? this.conv.conv2dWeightGrad(x, gy, weightShape, p)
      : this.cpu.conv2dWeightGrad(x, gy, weightShape, p);
  }

  // ---- fused kernels ----
  attention(q: WView, k: WView, v: WView, mask: WView | null, causal: boolean, scale: number): TypedArray {
    if (!isF32(q, k, v, mask)) return this.cpu.attention(q, k, v, mask, causal, scale);
    return attentionForward(this.scratch, q, k, v, mask, causal, scale);
  }
  attentionBackward(
    q: WView,
    k: WView,
    v: WView,
    mask: WView | null,
    causal: boolean,
    scale: number,
    gy: WView,
  ): [TypedArray, TypedArray, TypedArray] {
    if (isF32(q, k, v, mask, gy)) return attentionBackward(this.scratch, q, k, v, mask, causal, scale, gy);
    // Half types: widen to f32, run the f32 kernel (f32 accumulation), round once.
    const [a, b, c, m, g] = [q, k, v, mask, gy].map((x) => x && this.widen(x));
    return attentionBackward(this.scratch, a!, b!, c!, m, causal, scale, g!).map((r) => this.narrow(r, q.dtype)) as [
      TypedArray,
      TypedArray,
      TypedArray,
    ];
  }
  softmax(x: WView, log: boolean): TypedArray {
    return isF32(x) && !log ? softmaxRows(this.scratch, x) : this.cpu.softmax(x, log);
  }
  layerNorm(x: WView, weight: WView | null, bias: WView | null, normSize: number, eps: number): TypedArray {
    if (!isF32(x, weight, bias)) return this.cpu.layerNorm(x, weight, bias, normSize, eps);
    return layerNormForward(this.scratch, x, weight, bias, normSize, eps);
  }
  layerNormWithStats(x: WView, weight: WView | null, bias: WView | null, normSize: number, eps: number): [TypedArray, TypedArray | null] {
    const total = numel(x.shape);
    // The SIMD kernel writes them, into the heap: elsewhere the backward computes them again.
    const stats =
      isF32(x, weight, bias) && simdNormOk(this.scratch, total, normSize) ? (this.engine.heap?.f32((total / normSize) * 2) ?? null) : null;
    if (!stats) return [this.layerNorm(x, weight, bias, normSize, eps), null];
    return [layerNormForward(this.scratch, x, weight, bias, normSize, eps, stats), stats];
  }
  groupNorm(x: WView, groups: number, weight: WView | null, bias: WView | null, eps: number, silu: boolean): TypedArray {
    if (!isF32(x, weight, bias)) return this.cpu.groupNorm(x, groups, weight, bias, eps, silu);
    return groupNormForward(this.scratch, x, groups, weight, bias, eps, silu);
  }
  layerNormBackward(
    x: WView,
    weight: WView | null,
    bias: WView | null,
    normSize: number,
    eps: number,
    gy: WView,
    stats?: TypedArray | null,
  ): [TypedArray, TypedArray | null, TypedArray | null] {
    if (!simdNormOk(this.scratch, numel(x.shape), normSize)) return this.cpu.layerNormBackward(x, weight, bias, normSize, eps, gy);
    const w = weight && this.widen(weight);
    // Statistics come from an f32 forward (`layerNormWithStats`) of this x.
    const saved = stats instanceof Float32Array && x.dtype === 'float32' ? stats : null;
    const [dx, dw, db] = layerNormBackward(this.scratch, this.widen(x), w, bias && this.widen(bias), normSize, eps, this.widen(gy), saved);
    return [this.narrow(dx, x.dtype), dw && this.narrow(dw, weight!.dtype), db && this.narrow(db, bias!.dtype)];
  }
  groupNormBackward(
    x: WView,
    groups: number,
    weight: WView | null,
    bias: WView | null,
    eps: number,
    silu: boolean,
    gy: WView,
  ): [TypedArray, TypedArray | null, TypedArray | null] {
    const [N, C] = x.shape;
    const spatial = numel(x.shape) / Math.max(1, N * C);
    if (spatial % 4 !== 0 || !simdNormOk(this.scratch, numel(x.shape), spatial * (C / groups))) {
      return this.cpu.groupNormBackward(x, groups, weight, bias, eps, silu, gy);
    }
    const [w, b] = [weight && this.widen(weight), bias && this.widen(bias)];
    const [dx, dw, db] = groupNormBackward(this.scratch, this.widen(x), groups, w, b, eps, silu, this.widen(gy));
    return [this.narrow(dx, x.dtype), dw && this.narrow(dw, weight!.dtype), db && this.narrow(db, bias!.dtype)];
  }
  adamw(param: TypedArray, grad: WView, m: TypedArray, v: TypedArray, size: number, dtype: DType, hp: AdamWHyper): void {
    if (dtype !== 'float32' || grad.dtype !== 'float32') return this.cpu.adamw(param, grad, m, v, size, dtype, hp);
    adamwStep(this.scratch, param as Float32Array, grad, m as Float32Array, v as Float32Array, size, hp);
  }

  /** A float view as a contiguous f32 view (no copy when it already is one). */
  private widen(x: WView): WView {
    if (x.dtype === 'float32') return x;
    const shape = x.shape;
    return { storage: this.cpu.unary('copy', x, 'float32'), dtype: 'float32', shape, strides: contiguousStrides(shape), offset: 0 };
  }
  /** f32 results rounded to `dtype`. */
  private narrow(r: Float32Array, dtype: DType): TypedArray {
    if (dtype === 'float32') return r;
    const out = this.cpu.unary('copy', { storage: r, dtype: 'float32', shape: [r.length], strides: [1], offset: 0 }, dtype);
    pool.put(r);
    return out;
  }

  memoryInfo(): Record<string, number> {
    const e = this.engine;
    return {
      wasmMemoryBytes: e.memory.buffer.byteLength,
      wasmHeapBytes: e.heap?.bytes ?? 0,
      wasmScratchPeakBytes: e.peakScratch,
      wasmThreads: e.threads,
      wasmPoolBytes: pool.bytes,
    };
  }

  dispose(): void {
    pool.clear();
    // Without such an engine, plain buffers copy faster than shared ones.
    if (this.engine.sharesStorage) pool.share(false);
    if (this.engine.heap) pool.useHeap(this.engine.heap, false);
    this.engine.dispose();
  }
}

/** Creates the wasm backend (threads: all cores by default, or `threads`, or env KILN_WASM_THREADS). */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  return new WasmBackend(await Engine.create(options), options);
}
