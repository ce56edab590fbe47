import type { CpuView } from '../cpu/strided.js';
/**
 * The `wasm` backend: GEMM, convolutions (Winograd F(4×4,3×3), 1×1 direct, im2col + GEMM),
 * flash-style attention, softmax, groupNorm(+SiLU), layerNorm, AdamW and large elementwise ops
 * run as emitted WebAssembly SIMD across worker threads; smaller or irregular f32 elementwise
 * work runs as tight JS loops on the tensor buffers; everything else falls back to the cpu
 * reference kernels. See README.md in this folder.
 *
 * Tensors live in their own ArrayBuffers (plain `Float32Array`s, like the cpu backend), outside the
 * WebAssembly memory, so the sum of live tensors is not capped by wasm32's 4 GiB: each kernel
 * copies its operands into the shared scratch memory, runs, and copies its result out.
 */
import type { AdamWHyper, Backend, BinaryOp, Conv2dParams, ReduceOp, UnaryOp, View } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { isContiguous, numel } from '../../shape.js';
import { CpuBackend } from '../cpu/index.js';
import { offsets } from '../cpu/strided.js';
import { ADAMW, ATTN, BIN, GEMM, GNORM, IM2COL, LNORM, SOFTMAX, UN, UNARY_CODES, gemmWorkspaceBytes } from './kernels.js';
import { Engine } from './pool.js';
import { WIN_MAT, WIN_TILE } from './winograd.js';
import { pool } from './bufpool.js';
import type { EngineOptions } from './pool.js';
import { fastBinary, fastCopyInto, fastReduce, fastUnary, fastWhere } from './elementwise.js';

export interface WasmBackendOptions extends EngineOptions {
  /**
   * 3×3 stride-1 convolutions (and both gradients) through Winograd F(4×4, 3×3) when they have at
   * least 8 input and output channels (default true). 4× fewer multiplies; f32 rounding error grows
   * by a small constant factor (~1e-6 relative), so turn it off for bit-closer parity with im2col.
   */
  winograd?: boolean;
}
// The wasm backend stores tensors like the cpu backend (typed arrays outside wasm memory).
type WView = CpuView;

const f32bits = new Float32Array(1);
const i32bits = new Int32Array(f32bits.buffer);
const bitsOf = (v: number): number => {
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
function contigI32(v: WView): Int32Array {
  const s = v.storage as Int32Array;
  const n = numel(v.shape);
  const idx = offsets(v.shape, v.strides, v.offset);
  if (idx === null) return s.subarray(v.offset, v.offset + n);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = s[idx[i]];
  return out;
}

const isF32 = (...vs: (WView | null)[]): boolean => vs.every((v) => v === null || v.dtype === 'float32');

export class WasmBackend implements Backend<TypedArray> {
  readonly name = 'wasm';
  private readonly cpu = new CpuBackend();
  private readonly wsBytes: number;

  private readonly winograd: boolean;

  constructor(
    readonly engine: Engine,
    options: WasmBackendOptions = {},
  ) {
    this.wsBytes = Math.ceil(gemmWorkspaceBytes(engine.config) / 64) * 64;
    this.winograd = options.winograd ?? true;
  }

  get threads(): number {
    return this.engine.threads;
  }

  // ---- memory: plain typed arrays, as the cpu backend ----
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
    return this.cpu.random(dist, dtype, size, key, counter);
  }

  // ---- elementwise and reductions: fast f32 paths, cpu fallback ----
  unary(op: UnaryOp, x: WView, outDtype: DType): TypedArray {
    return this.simdUnary(op, x, outDtype) ?? fastUnary(op, x, outDtype) ?? this.cpu.unary(op, x, outDtype);
  }

  /** exp, sigmoid, silu, tanh and both GELUs of f32 tensors as SIMD polynomials across threads. */
  private simdUnary(op: UnaryOp, x: WView, outDtype: DType): TypedArray | null {
    const code = (UNARY_CODES as Record<string, number | undefined>)[op];
    const n = numel(x.shape);
    if (code === undefined || outDtype !== 'float32' || x.dtype !== 'float32' || n < 1 << 14) return null;
    const src = contig(x);
    const out = pool.f32(n);
    const main = n - (n % 4);
    const e = this.engine;
    const CH = 1 << 22;
    for (let c0 = 0; c0 < main; c0 += CH) {
      const len = Math.min(CH, main - c0);
      e.reset();
      const pa = e.alloc(len * 4);
      e.f32.set(src.subarray(c0, c0 + len), pa / 4);
      const d = new Array<number>(3);
      d[UN.op] = code; d[UN.a] = pa; d[UN.n] = len;
      e.run('task_unary', e.desc(d));
      out.set(e.f32.subarray(pa / 4, pa / 4 + len), c0);
    }
    if (main < n) {
      const tail = fastUnary(op, { storage: src, dtype: 'float32', shape: [n - main], strides: [1], offset: main }, 'float32') as Float32Array;
      out.set(tail, main);
    }
    return out;
  }
  binary(op: BinaryOp, a: WView, b: WView, outDtype: DType): TypedArray {
    return this.simdBinary(op, a, b, outDtype) ?? fastBinary(op, a, b, outDtype) ?? this.cpu.binary(op, a, b, outDtype);
  }

  /**
   * Large f32 add/sub/mul/div (same shape, scalar, or one value per last-dim row) as SIMD across
   * threads, streamed through scratch; a JS loop is memory-latency bound at ~2.5 ns per element.
   */
  private simdBinary(op: BinaryOp, a: WView, b: WView, outDtype: DType): TypedArray | null {
    const code = op === 'add' ? 0 : op === 'sub' ? 1 : op === 'mul' ? 2 : op === 'div' ? 3 : -1;
    if (code < 0 || outDtype !== 'float32' || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
    const n = numel(a.shape);
    const r = a.shape.length;
    if (n < 1 << 20 || n % 4 !== 0 || !isContiguous(a.shape, a.strides)) {
      // A broadcast left operand of a commutative op: swap.
      if ((code === 0 || code === 2) && n >= 1 << 20 && n % 4 === 0 && isContiguous(b.shape, b.strides) && !isContiguous(a.shape, a.strides)) return this.simdBinary(op, b, a, outDtype);
      return null;
    }
    let mode: number;
    const D = a.shape[r - 1];
    if (isContiguous(b.shape, b.strides)) mode = 0;
    else if (b.strides.every((x) => x === 0)) mode = 1;
    else if (b.strides[r - 1] === 0 && D % 4 === 0 && isContiguous(a.shape.slice(0, -1), b.strides.slice(0, -1))) mode = 2;
    else return null;
    const A = a.storage as Float32Array;
    const B = b.storage as Float32Array;
    const out = pool.f32(n);
    const e = this.engine;
    const CH = mode === 2 ? Math.max(D, Math.floor((1 << 22) / D) * D) : 1 << 22;
    for (let c0 = 0; c0 < n; c0 += CH) {
      const len = Math.min(CH, n - c0);
      e.reset();
      const pa = e.alloc(len * 4);
      e.f32.set(A.subarray(a.offset + c0, a.offset + c0 + len), pa / 4);
      let pb: number;
      if (mode === 0) {
        pb = e.alloc(len * 4);
        e.f32.set(B.subarray(b.offset + c0, b.offset + c0 + len), pb / 4);
      } else if (mode === 1) {
        pb = e.alloc(16);
        e.f32[pb / 4] = B[b.offset];
      } else {
        pb = e.alloc((len / D) * 4);
        e.f32.set(B.subarray(b.offset + c0 / D, b.offset + (c0 + len) / D), pb / 4);
      }
      const d = new Array<number>(6);
      d[BIN.op] = code; d[BIN.a] = pa; d[BIN.b] = pb; d[BIN.n] = len; d[BIN.mode] = mode; d[BIN.D] = D;
      e.run('task_binary', e.desc(d));
      out.set(e.f32.subarray(pa / 4, pa / 4 + len), c0);
    }
    return out;
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
    if (table.dtype !== 'float32' || index.dtype !== 'int32' || !isContiguous(table.shape, table.strides)) return this.cpu.gatherRows(table, index);
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

  // ---- staging ----
  /** Copies the storage range a view touches into scratch; returns the base address and element strides. */
  private stage(v: WView): { ptr: number; strides: number[] } {
    const e = this.engine;
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
    const strides: number[] = [];
    let acc = 1;
    for (let i = v.shape.length - 1; i >= 0; i--) {
      strides[i] = acc;
      acc *= v.shape[i];
    }
    return { ptr: p, strides };
  }

  /** Stages a view as a contiguous block. */
  private stageContig(v: WView): number {
    const p = this.engine.alloc(Math.max(1, numel(v.shape)) * 4);
    this.engine.f32.set(contig(v), p / 4);
    return p;
  }

  private workspaces(extra = 0): { ws: number; stride: number } {
    const stride = this.wsBytes + Math.ceil(extra / 64) * 64;
    return { ws: this.engine.alloc(stride * this.engine.threads), stride };
  }

  private gemm(
    A: number, rsA: number, csA: number, bsA: number,
    B: number, rsB: number, csB: number, bsB: number,
    C: number, ldc: number, bsC: number,
    M: number, N: number, K: number, batch: number, acc: boolean, ws: { ws: number; stride: number },
  ): void {
    const fields = new Array<number>(18);
    const G = GEMM;
    fields[G.A] = A; fields[G.rsA] = rsA; fields[G.csA] = csA; fields[G.bsA] = bsA;
    fields[G.B] = B; fields[G.rsB] = rsB; fields[G.csB] = csB; fields[G.bsB] = bsB;
    fields[G.C] = C; fields[G.ldc] = ldc; fields[G.bsC] = bsC;
    fields[G.M] = M; fields[G.N] = N; fields[G.K] = K; fields[G.batch] = batch; fields[G.acc] = acc ? 1 : 0;
    fields[G.ws] = ws.ws; fields[G.wsStride] = ws.stride;
    this.engine.run('task_gemm', this.engine.desc(fields));
  }

  // ---- matmul ----
  matmul(a: WView, b: WView): TypedArray {
    if (!isF32(a, b)) return this.cpu.matmul(a, b);
    const [B, M, K] = a.shape;
    const N = b.shape[2];
    const out = pool.f32(B * M * N);
    if (out.length === 0) return out;
    const e = this.engine;
    const per = (M * K + K * N + M * N) * 4 * 2;
    const chunk = Math.max(1, Math.min(B, Math.floor((1 << 30) / per)));
    for (let b0 = 0; b0 < B; b0 += chunk) {
      const nb = Math.min(chunk, B - b0);
      const sub = (v: WView): WView => ({ ...v, shape: [nb, v.shape[1], v.shape[2]], offset: v.offset + b0 * v.strides[0] });
      e.reset();
      const sa = this.stage(sub(a));
      const sb = this.stage(sub(b));
      const c = e.alloc(nb * M * N * 4);
      const ws = this.workspaces();
      this.gemm(sa.ptr, sa.strides[1], sa.strides[2], nb > 1 ? sa.strides[0] : 0, sb.ptr, sb.strides[1], sb.strides[2], nb > 1 ? sb.strides[0] : 0, c, N, M * N, M, N, K, nb, false, ws);
      out.set(e.f32.subarray(c / 4, c / 4 + nb * M * N), b0 * M * N);
    }
    return out;
  }

  // ---- convolutions: im2col (by output-row chunks) + GEMM ----
  /** Copies a kernel's result out of the scratch memory into `out`. */
  private copyOut(ptr: number, out: Float32Array): Float32Array {
    out.set(this.engine.f32.subarray(ptr / 4, ptr / 4 + out.length));
    return out;
  }

  /** The im2col paths' loop: each image, in chunks of `g.rows` output rows (`Pc` output pixels). */
  private forEachRowChunk(g: { N: number; Ho: number; Wo: number; rows: number }, fn: (n: number, oh0: number, oh1: number, Pc: number) => void): void {
    for (let n = 0; n < g.N; n++)
      for (let oh0 = 0; oh0 < g.Ho; oh0 += g.rows) {
        const oh1 = Math.min(g.Ho, oh0 + g.rows);
        fn(n, oh0, oh1, (oh1 - oh0) * g.Wo);
      }
  }

  private convGeom(xShape: readonly number[], wShape: readonly number[], p: Conv2dParams) {
    const [N, C, H, W] = xShape;
    const [O, , kh, kw] = wShape;
    const Ho = Math.floor((H + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
    const Wo = Math.floor((W + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
    const CKK = C * kh * kw;
    // Output rows per chunk so one col chunk stays within ~16 MiB.
    const rows = Math.max(1, Math.min(Ho, Math.floor((16 << 20) / Math.max(1, CKK * Wo * 4))));
    return { N, C, H, W, O, kh, kw, Ho, Wo, CKK, P: Ho * Wo, rows };
  }

  private im2colDesc(x: number, g: ReturnType<WasmBackend['convGeom']>, p: Conv2dParams, oh0: number, oh1: number, col: number): number {
    const f = new Array<number>(16);
    const I = IM2COL;
    f[I.x] = x; f[I.C] = g.C; f[I.H] = g.H; f[I.W] = g.W; f[I.kh] = g.kh; f[I.kw] = g.kw;
    f[I.sh] = p.stride[0]; f[I.sw] = p.stride[1]; f[I.ph] = p.padding[0]; f[I.pw] = p.padding[1];
    f[I.dh] = p.dilation[0]; f[I.dw] = p.dilation[1]; f[I.Wo] = g.Wo; f[I.oh0] = oh0; f[I.oh1] = oh1; f[I.col] = col;
    return this.engine.desc(f);
  }

  /** 1×1, stride 1, no padding: the image itself is the GEMM operand (no im2col). */
  private pointwise(wShape: readonly number[], p: Conv2dParams): boolean {
    return p.groups === 1 && wShape[2] === 1 && wShape[3] === 1 && p.stride[0] === 1 && p.stride[1] === 1 && p.padding[0] === 0 && p.padding[1] === 0;
  }

  // ---- Winograd F(4×4, 3×3) for 3×3 stride-1 convolutions ----
  private winoOk(C: number, O: number, wShape: readonly number[], p: Conv2dParams, tiles: number): boolean {
    if (!this.winograd || p.groups !== 1 || wShape[2] !== 3 || wShape[3] !== 3) return false;
    if (p.stride[0] !== 1 || p.stride[1] !== 1 || p.dilation[0] !== 1 || p.dilation[1] !== 1) return false;
    if (p.padding[0] > 2 || p.padding[1] > 2 || C < 8 || O < 8 || tiles === 0) return false;
    return 36 * (C + O) * tiles * 4 + 36 * C * O * 4 < 1 << 30;
  }

  private winoTile(task: 'task_wino_in' | 'task_wino_dy' | 'task_wino_out', f: Partial<Record<keyof typeof WIN_TILE, number>>): void {
    const d = new Array<number>(13).fill(0);
    for (const [key, v] of Object.entries(f)) d[WIN_TILE[key as keyof typeof WIN_TILE]] = v;
    this.engine.run(task, this.engine.desc(d));
  }

  private winoMat(task: 'task_wino_w' | 'task_wino_winv', f: Record<keyof typeof WIN_MAT, number>): void {
    const d = new Array<number>(12).fill(0);
    for (const [key, v] of Object.entries(f)) d[WIN_MAT[key as keyof typeof WIN_MAT]] = v;
    this.engine.run(task, this.engine.desc(d));
  }

  /** y[N, Cout, Ho, Wo] = conv(src[N, Cin, H, W], U) where U = G g Gᵀ is already in scratch as [36][Cout][Cin]. */
  private winoConv(src: number, N: number, Cin: number, H: number, W: number, ph: number, pw: number, U: number, Cout: number, Ho: number, Wo: number, y: number): void {
    const e = this.engine;
    const tilesH = Math.ceil(Ho / 4);
    const tilesW = Math.ceil(Wo / 4);
    const T = N * tilesH * tilesW;
    const V = e.alloc(36 * Cin * T * 4);
    const M = e.alloc(36 * Cout * T * 4);
    this.winoTile('task_wino_in', { src, N, C: Cin, H, W, ph, pw, tilesH, tilesW, dst: V, sXi: Cin * T, sC: T, sT: 1 });
    this.gemm(U, Cin, 1, Cout * Cin, V, T, 1, Cin * T, M, T, Cout * T, Cout, T, Cin, 36, false, this.workspaces());
    this.winoTile('task_wino_out', { src: M, sXi: Cout * T, sC: T, sT: 1, N, C: Cout, H: Ho, W: Wo, tilesH, tilesW, dst: y });
  }

  conv2d(x: WView, w: WView, p: Conv2dParams): TypedArray {
    if (!isF32(x, w) || p.groups !== 1) return this.cpu.conv2d(x, w, p);
    const g = this.convGeom(x.shape, w.shape, p);
    const out = pool.f32(g.N * g.O * g.P);
    if (out.length === 0) return out;
    const e = this.engine;
    e.reset();
    const xs = this.stageContig(x);
    const ws_ = this.stageContig(w);
    const y = e.alloc(out.length * 4);
    if (this.pointwise(w.shape, p)) {
      this.gemm(ws_, g.C, 1, 0, xs, g.P, 1, g.C * g.P, y, g.P, g.O * g.P, g.O, g.P, g.C, g.N, false, this.workspaces());
      return this.copyOut(y, out);
    }
    if (this.winoOk(g.C, g.O, w.shape, p, g.N * Math.ceil(g.Ho / 4) * Math.ceil(g.Wo / 4))) {
      const U = e.alloc(36 * g.O * g.C * 4);
      this.winoMat('task_wino_w', { src: ws_, sA: g.C * 9, sB: 9, sI: 3, sJ: 1, nA: g.O, nB: g.C, dst: U, dA: g.C, dB: 1, dI: 6 * g.O * g.C, dJ: g.O * g.C });
      this.winoConv(xs, g.N, g.C, g.H, g.W, p.padding[0], p.padding[1], U, g.O, g.Ho, g.Wo, y);
      return this.copyOut(y, out);
    }
    const col = e.alloc(g.CKK * g.rows * g.Wo * 4);
    const ws = this.workspaces();
    this.forEachRowChunk(g, (n, oh0, oh1, Pc) => {
      e.run('task_im2col', this.im2colDesc(xs + n * g.C * g.H * g.W * 4, g, p, oh0, oh1, col));
      this.gemm(ws_, g.CKK, 1, 0, col, Pc, 1, 0, y + (n * g.O * g.P + oh0 * g.Wo) * 4, g.P, 0, g.O, Pc, g.CKK, 1, false, ws);
    });
    return this.copyOut(y, out);
  }

  conv2dInputGrad(gy: WView, w: WView, inputShape: readonly number[], p: Conv2dParams): TypedArray {
    if (!isF32(gy, w) || p.groups !== 1) return this.cpu.conv2dInputGrad(gy, w, inputShape, p);
    const g = this.convGeom(inputShape, w.shape, p);
    const out = pool.f32(numel(inputShape));
    if (out.length === 0 || g.P === 0) return out.fill(0);
    const e = this.engine;
    e.reset();
    const gys = this.stageContig(gy);
    const ws_ = this.stageContig(w);
    const gx = e.alloc(out.length * 4);
    if (this.pointwise(w.shape, p)) {
      this.gemm(ws_, 1, g.C, 0, gys, g.P, 1, g.O * g.P, gx, g.P, g.C * g.P, g.C, g.P, g.O, g.N, false, this.workspaces());
      return this.copyOut(gx, out);
    }
    if (this.winoOk(g.C, g.O, w.shape, p, g.N * Math.ceil(g.H / 4) * Math.ceil(g.W / 4))) {
      // The input gradient is the forward conv of gy with w flipped and transposed, padding 2 - p.
      const U = e.alloc(36 * g.O * g.C * 4);
      this.winoMat('task_wino_w', { src: ws_ + 8 * 4, sA: 9, sB: g.C * 9, sI: -3, sJ: -1, nA: g.C, nB: g.O, dst: U, dA: g.O, dB: 1, dI: 6 * g.C * g.O, dJ: g.C * g.O });
      this.winoConv(gys, g.N, g.O, g.Ho, g.Wo, 2 - p.padding[0], 2 - p.padding[1], U, g.C, g.H, g.W, gx);
      return this.copyOut(gx, out);
    }
    e.f32.fill(0, gx / 4, gx / 4 + out.length);
    const col = e.alloc(g.CKK * g.rows * g.Wo * 4);
    const ws = this.workspaces();
    this.forEachRowChunk(g, (n, oh0, oh1, Pc) => {
      // dcol[CKK, Pc] = wᵀ[CKK, O] · gy[n][O, chunk]
      this.gemm(ws_, 1, g.CKK, 0, gys + (n * g.O * g.P + oh0 * g.Wo) * 4, g.P, 1, 0, col, Pc, 0, g.CKK, Pc, g.O, 1, false, ws);
      e.run('task_col2im', this.im2colDesc(gx + n * g.C * g.H * g.W * 4, g, p, oh0, oh1, col));
    });
    return this.copyOut(gx, out);
  }

  conv2dWeightGrad(x: WView, gy: WView, weightShape: readonly number[], p: Conv2dParams): TypedArray {
    if (!isF32(x, gy) || p.groups !== 1) return this.cpu.conv2dWeightGrad(x, gy, weightShape, p);
    const g = this.convGeom(x.shape, weightShape, p);
    const out = pool.f32(numel(weightShape));
    if (out.length === 0) return out;
    const e = this.engine;
    e.reset();
    const xs = this.stageContig(x);
    const gys = this.stageContig(gy);
    const gw = e.alloc(out.length * 4);
    const tilesH = Math.ceil(g.Ho / 4);
    const tilesW = Math.ceil(g.Wo / 4);
    const T = g.N * tilesH * tilesW;
    if (this.pointwise(weightShape, p)) {
      // gw[O, C] = Σ_n gy[n][O, P] · x[n]ᵀ[P, C] (C batch stride 0: accumulate over images)
      this.gemm(gys, g.P, 1, g.O * g.P, xs, 1, g.P, g.C * g.P, gw, g.C, 0, g.O, g.C, g.P, g.N, false, this.workspaces());
      return this.copyOut(gw, out);
    }
    if (this.winoOk(g.C, g.O, weightShape, p, T)) {
      // Z[ξ] = Σ_tiles (A dy Aᵀ)[ξ] (Bᵀ d B)[ξ]ᵀ, then dg = Gᵀ Z G.
      const Vt = e.alloc(36 * T * g.C * 4);
      const Wd = e.alloc(36 * g.O * T * 4);
      const Z = e.alloc(36 * g.O * g.C * 4);
      this.winoTile('task_wino_in', { src: xs, N: g.N, C: g.C, H: g.H, W: g.W, ph: p.padding[0], pw: p.padding[1], tilesH, tilesW, dst: Vt, sXi: T * g.C, sC: 1, sT: g.C });
      this.winoTile('task_wino_dy', { src: gys, N: g.N, C: g.O, H: g.Ho, W: g.Wo, ph: 0, pw: 0, tilesH, tilesW, dst: Wd, sXi: g.O * T, sC: T, sT: 1 });
      this.gemm(Wd, T, 1, g.O * T, Vt, g.C, 1, T * g.C, Z, g.C, g.O * g.C, g.O, g.C, T, 36, false, this.workspaces());
      this.winoMat('task_wino_winv', { src: Z, sA: g.C, sB: 1, sI: 6 * g.O * g.C, sJ: g.O * g.C, nA: g.O, nB: g.C, dst: gw, dA: g.C * 9, dB: 9, dI: 3, dJ: 1 });
      return this.copyOut(gw, out);
    }
    e.f32.fill(0, gw / 4, gw / 4 + out.length);
    const col = e.alloc(g.CKK * g.rows * g.Wo * 4);
    const ws = this.workspaces();
    this.forEachRowChunk(g, (n, oh0, oh1, Pc) => {
      e.run('task_im2col', this.im2colDesc(xs + n * g.C * g.H * g.W * 4, g, p, oh0, oh1, col));
      // gw[O, CKK] += gy[n][O, chunk] · colᵀ[chunk, CKK]
      this.gemm(gys + (n * g.O * g.P + oh0 * g.Wo) * 4, g.P, 1, 0, col, 1, Pc, 0, gw, g.CKK, 0, g.O, g.CKK, Pc, 1, true, ws);
    });
    return this.copyOut(gw, out);
  }

  // ---- fused attention: per (batch, 64-query block): S = q kᵀ, softmax, S v ----
  attention(q: WView, k: WView, v: WView, mask: WView | null, causal: boolean, scale: number): TypedArray {
    if (!isF32(q, k, v, mask)) return this.cpu.attention(q, k, v, mask, causal, scale);
    const [B, Lq, E] = q.shape;
    const Lk = k.shape[1];
    const Ev = v.shape[2];
    const out = pool.f32(B * Lq * Ev);
    if (out.length === 0) return out;
    if (Lk === 0) return out.fill(0);
    const e = this.engine;
    e.reset();
    const qs = this.stageContig(q);
    // kᵀ per batch ([B, E, Lk]) so the packed panels are plain copies.
    const kt = e.alloc(B * E * Lk * 4);
    {
      const src = contig(k);
      const f = e.f32;
      const base = kt / 4;
      for (let b = 0; b < B; b++)
        for (let j = 0; j < Lk; j++) {
          const s = (b * Lk + j) * E;
          const d = base + b * E * Lk + j;
          for (let x = 0; x < E; x++) f[d + x * Lk] = src[s + x];
        }
    }
    const vs = this.stageContig(v);
    const ms = mask ? this.stageContig(mask) : 0;
    const o = e.alloc(out.length * 4);
    const bq = 64;
    const ldS = Math.ceil(Lk / 4) * 4;
    const ws = this.workspaces(bq * ldS * 4);
    const f = new Array<number>(16);
    const A = ATTN;
    f[A.Q] = qs; f[A.K] = kt; f[A.V] = vs; f[A.O] = o; f[A.mask] = ms; f[A.B] = B; f[A.Lq] = Lq; f[A.Lk] = Lk;
    f[A.E] = E; f[A.Ev] = Ev; f[A.causal] = causal ? 1 : 0; f[A.scale] = bitsOf(scale); f[A.ws] = ws.ws; f[A.wsStride] = ws.stride;
    f[A.bq] = bq; f[A.ldS] = ldS;
    e.run('task_attention', e.desc(f));
    return this.copyOut(o, out);
  }

  // ---- softmax (rows of the last dim) ----
  softmax(x: WView, log: boolean): TypedArray {
    if (!isF32(x) || log) return this.cpu.softmax(x, log);
    const D = x.shape[x.shape.length - 1];
    const n = numel(x.shape);
    const out = pool.f32(n);
    if (n === 0 || D === 0) return out;
    const rows = n / D;
    const ld = Math.ceil(D / 4) * 4;
    const e = this.engine;
    const src = contig(x);
    const maxRows = Math.max(1, Math.floor((512 << 20) / (ld * 4)));
    for (let r0 = 0; r0 < rows; r0 += maxRows) {
      const nr = Math.min(maxRows, rows - r0);
      e.reset();
      const s = e.alloc(nr * ld * 4);
      const f = e.f32;
      if (ld === D) f.set(src.subarray(r0 * D, (r0 + nr) * D), s / 4);
      else for (let r = 0; r < nr; r++) f.set(src.subarray((r0 + r) * D, (r0 + r + 1) * D), s / 4 + r * ld);
      const d = new Array<number>(4);
      d[SOFTMAX.S] = s; d[SOFTMAX.rows] = nr; d[SOFTMAX.n] = D; d[SOFTMAX.ld] = ld;
      e.run('task_softmax', e.desc(d));
      const g = e.f32;
      if (ld === D) out.set(g.subarray(s / 4, s / 4 + nr * D), r0 * D);
      else for (let r = 0; r < nr; r++) out.set(g.subarray(s / 4 + r * ld, s / 4 + r * ld + D), (r0 + r) * D);
    }
    return out;
  }

  // ---- memory-bound fused kernels, directly on the tensor buffers ----
  layerNorm(x: WView, weight: WView | null, bias: WView | null, normSize: number, eps: number): TypedArray {
    if (!isF32(x, weight, bias)) return this.cpu.layerNorm(x, weight, bias, normSize, eps);
    const total = numel(x.shape);
    if (normSize % 4 === 0 && normSize > 0 && total > 0 && total * 4 < this.engine.maxScratch / 2) {
      const e = this.engine;
      e.reset();
      const xs = this.stageContig(x);
      const ws = weight ? this.stageContig(weight) : 0;
      const bs = bias ? this.stageContig(bias) : 0;
      const d = new Array<number>(6);
      d[LNORM.x] = xs; d[LNORM.rows] = total / normSize; d[LNORM.size] = normSize; d[LNORM.w] = ws; d[LNORM.b] = bs; d[LNORM.eps] = bitsOf(eps);
      e.run('task_layernorm', e.desc(d));
      const out = pool.f32(total);
      out.set(e.f32.subarray(xs / 4, xs / 4 + total));
      return out;
    }
    const v = contig(x);
    const w = weight && contig(weight);
    const b = bias && contig(bias);
    const out = pool.f32(v.length);
    for (let r = 0; r < v.length; r += normSize) {
      let s = 0;
      for (let i = 0; i < normSize; i++) s += v[r + i];
      const mean = s / normSize;
      let q = 0;
      for (let i = 0; i < normSize; i++) {
        const d = v[r + i] - mean;
        q += d * d;
      }
      const rstd = 1 / Math.sqrt(q / normSize + eps);
      if (w && b) for (let i = 0; i < normSize; i++) out[r + i] = (v[r + i] - mean) * rstd * w[i] + b[i];
      else for (let i = 0; i < normSize; i++) out[r + i] = (v[r + i] - mean) * rstd * (w ? w[i] : 1) + (b ? b[i] : 0);
    }
    return out;
  }

  groupNorm(x: WView, groups: number, weight: WView | null, bias: WView | null, eps: number, silu: boolean): TypedArray {
    if (!isF32(x, weight, bias)) return this.cpu.groupNorm(x, groups, weight, bias, eps, silu);
    const spatialSize = numel(x.shape.slice(2));
    const total = numel(x.shape);
    if (spatialSize % 4 === 0 && total > 0 && total * 4 < this.engine.maxScratch / 2) {
      const e = this.engine;
      e.reset();
      const xs = this.stageContig(x);
      const ws = weight ? this.stageContig(weight) : 0;
      const bs = bias ? this.stageContig(bias) : 0;
      const d = new Array<number>(9);
      d[GNORM.x] = xs; d[GNORM.N] = x.shape[0]; d[GNORM.C] = x.shape[1]; d[GNORM.spatial] = spatialSize; d[GNORM.groups] = groups;
      d[GNORM.w] = ws; d[GNORM.b] = bs; d[GNORM.eps] = bitsOf(eps); d[GNORM.silu] = silu ? 1 : 0;
      e.run('task_groupnorm', e.desc(d));
      const out = pool.f32(total);
      out.set(e.f32.subarray(xs / 4, xs / 4 + total));
      return out;
    }
    const v = contig(x);
    const w = weight && contig(weight);
    const b = bias && contig(bias);
    const [N, C] = x.shape;
    const spatial = numel(x.shape.slice(2));
    const cg = C / groups;
    const size = cg * spatial;
    const out = pool.f32(v.length);
    for (let n = 0; n < N; n++)
      for (let g = 0; g < groups; g++) {
        const base = (n * C + g * cg) * spatial;
        let s = 0;
        for (let i = 0; i < size; i++) s += v[base + i];
        const mean = s / size;
        let q = 0;
        for (let i = 0; i < size; i++) {
          const d = v[base + i] - mean;
          q += d * d;
        }
        const rstd = 1 / Math.sqrt(q / size + eps);
        for (let c = 0; c < cg; c++) {
          const ch = g * cg + c;
          const sc = rstd * (w ? w[ch] : 1);
          const sh = (b ? b[ch] : 0) - mean * sc;
          const o = base + c * spatial;
          if (silu) {
            for (let i = 0; i < spatial; i++) {
              const y = v[o + i] * sc + sh;
              out[o + i] = y / (1 + Math.exp(-y));
            }
          } else for (let i = 0; i < spatial; i++) out[o + i] = v[o + i] * sc + sh;
        }
      }
    return out;
  }

  adamw(param: TypedArray, grad: WView, m: TypedArray, v: TypedArray, size: number, dtype: DType, hp: AdamWHyper): void {
    if (dtype !== 'float32' || grad.dtype !== 'float32') return this.cpu.adamw(param, grad, m, v, size, dtype, hp);
    const p = param as Float32Array;
    const mm = m as Float32Array;
    const vv = v as Float32Array;
    const g = contig(grad);
    const b1 = hp.beta1;
    const b2 = hp.beta2;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    const decay = 1 - hp.lr * hp.weightDecay;
    const stepSize = hp.lr / (1 - b1 ** hp.step);
    const invBc2 = 1 / (1 - b2 ** hp.step);
    const eps = hp.eps;
    // SIMD across threads, streamed through scratch in chunks; the (< 4 element) tail in JS below.
    const e = this.engine;
    const CH = 1 << 18; // 4 × 1 MiB per chunk: staged data stays in cache for the compute pass
    const main = size - (size % 4);
    for (let c0 = 0; c0 < main; c0 += CH) {
      const n = Math.min(CH, main - c0);
      e.reset();
      const ptr = [p, g, mm, vv].map((a) => {
        const q = e.alloc(n * 4);
        e.f32.set(a.subarray(c0, c0 + n), q / 4);
        return q;
      });
      const d = new Array<number>(13);
      d[ADAMW.p] = ptr[0]; d[ADAMW.g] = ptr[1]; d[ADAMW.m] = ptr[2]; d[ADAMW.v] = ptr[3]; d[ADAMW.n] = n;
      d[ADAMW.decay] = bitsOf(decay); d[ADAMW.b1] = bitsOf(b1); d[ADAMW.c1] = bitsOf(c1); d[ADAMW.b2] = bitsOf(b2); d[ADAMW.c2] = bitsOf(c2);
      d[ADAMW.stepSize] = bitsOf(stepSize); d[ADAMW.invBc2] = bitsOf(invBc2); d[ADAMW.eps] = bitsOf(eps);
      e.run('task_adamw', e.desc(d));
      const f = e.f32;
      p.set(f.subarray(ptr[0] / 4, ptr[0] / 4 + n), c0);
      mm.set(f.subarray(ptr[2] / 4, ptr[2] / 4 + n), c0);
      vv.set(f.subarray(ptr[3] / 4, ptr[3] / 4 + n), c0);
    }
    for (let i = main; i < size; i++) {
      const gi = g[i];
      const mi = b1 * mm[i] + c1 * gi;
      const vi = b2 * vv[i] + c2 * gi * gi;
      mm[i] = mi;
      vv[i] = vi;
      p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi * invBc2) + eps);
    }
  }

  memoryInfo(): Record<string, number> {
    return { wasmScratchBytes: this.engine.memory.buffer.byteLength, wasmThreads: this.engine.threads, wasmPoolBytes: pool.bytes };
  }

  dispose(): void {
    pool.clear();
    this.engine.dispose();
  }
}

/** Creates the wasm backend (threads: all cores by default, or `threads`, or env KILN_WASM_THREADS). */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  return new WasmBackend(await Engine.create(options), options);
}
