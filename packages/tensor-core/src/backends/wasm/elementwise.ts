import type { CpuView } from '../cpu/strided.js';
/**
 * f32 fast paths for elementwise ops and simple reductions, run directly on the tensor buffers
 * (memory-bound work gains nothing from a copy into wasm memory). Each returns null when the case
 * is not covered, and the backend falls back to the cpu reference kernel.
 */
import type { BinaryOp, ReduceOp, UnaryOp, View } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { isContiguous, numel } from '../../shape.js';
import { erf } from '../cpu/elementwise.js';
import { pool } from './bufpool.js';

// The wasm backend stores tensors like the cpu backend (typed arrays outside wasm memory).
type WView = CpuView;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Calls `row(aOff, bOff, outOff, len)` for every last-dim row of the shape, strides given per operand. */
function forRows(
  shape: readonly number[],
  sa: readonly number[],
  oa: number,
  sb: readonly number[],
  ob: number,
  row: (a: number, b: number, o: number, len: number) => void,
): void {
  const rank = shape.length;
  if (rank === 0) {
    row(oa, ob, 0, 1);
    return;
  }
  const n = numel(shape);
  if (n === 0) return;
  const last = rank - 1;
  const len = shape[last];
  const idx = new Array<number>(rank).fill(0);
  let a = oa;
  let b = ob;
  for (let o = 0; o < n; o += len) {
    row(a, b, o, len);
    let d = last - 1;
    while (d >= 0) {
      idx[d]++;
      a += sa[d];
      b += sb[d];
      if (idx[d] < shape[d]) break;
      a -= sa[d] * shape[d];
      b -= sb[d] * shape[d];
      idx[d] = 0;
      d--;
    }
  }
}

const UNARY_OK = new Set<UnaryOp>([
  'copy',
  'neg',
  'abs',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'reciprocal',
  'square',
  'sin',
  'cos',
  'tanh',
  'sigmoid',
  'relu',
  'silu',
  'gelu',
  'geluTanh',
  'erf',
]);

function unaryRow(op: UnaryOp, out: Float32Array, o: number, len: number, s: Float32Array, i: number, ls: number): void {
  const end = o + len;
  switch (op) {
    case 'copy':
      if (ls === 1) out.set(s.subarray(i, i + len), o);
      else for (let j = o; j < end; j++, i += ls) out[j] = s[i];
      return;
    case 'neg':
      for (let j = o; j < end; j++, i += ls) out[j] = -s[i];
      return;
    case 'abs':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.abs(s[i]);
      return;
    case 'exp':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.exp(s[i]);
      return;
    case 'log':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.log(s[i]);
      return;
    case 'sqrt':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.sqrt(s[i]);
      return;
    case 'rsqrt':
      for (let j = o; j < end; j++, i += ls) out[j] = 1 / Math.sqrt(s[i]);
      return;
    case 'reciprocal':
      for (let j = o; j < end; j++, i += ls) out[j] = 1 / s[i];
      return;
    case 'square':
      for (let j = o; j < end; j++, i += ls) {
        const v = s[i];
        out[j] = v * v;
      }
      return;
    case 'sin':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.sin(s[i]);
      return;
    case 'cos':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.cos(s[i]);
      return;
    case 'tanh':
      for (let j = o; j < end; j++, i += ls) out[j] = Math.tanh(s[i]);
      return;
    case 'sigmoid':
      for (let j = o; j < end; j++, i += ls) out[j] = 1 / (1 + Math.exp(-s[i]));
      return;
    case 'relu':
      for (let j = o; j < end; j++, i += ls) {
        const v = s[i];
        out[j] = v > 0 ? v : 0;
      }
      return;
    case 'silu':
      for (let j = o; j < end; j++, i += ls) {
        const v = s[i];
        out[j] = v / (1 + Math.exp(-v));
      }
      return;
    case 'gelu':
      for (let j = o; j < end; j++, i += ls) out[j] = 0.5 * s[i] * (1 + erf(s[i] * Math.SQRT1_2));
      return;
    case 'geluTanh':
      for (let j = o; j < end; j++, i += ls) {
        const v = s[i];
        out[j] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
      }
      return;
    case 'erf':
      for (let j = o; j < end; j++, i += ls) out[j] = erf(s[i]);
      return;
  }
}

export function fastUnary(op: UnaryOp, x: WView, outDtype: DType): TypedArray | null {
  if (x.dtype !== 'float32' || outDtype !== 'float32' || !UNARY_OK.has(op)) return null;
  const n = numel(x.shape);
  const out = pool.f32(n);
  const s = x.storage as Float32Array;
  if (isContiguous(x.shape, x.strides)) {
    unaryRow(op, out, 0, n, s, x.offset, 1);
    return out;
  }
  const ls = x.shape.length ? x.strides[x.shape.length - 1] : 1;
  forRows(x.shape, x.strides, x.offset, x.strides, 0, (a, _b, o, len) => unaryRow(op, out, o, len, s, a, ls));
  return out;
}

const BINARY_OK = new Set<BinaryOp>(['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow']);

function binaryRow(
  op: BinaryOp,
  out: Float32Array,
  o: number,
  len: number,
  A: Float32Array,
  ia: number,
  la: number,
  B: Float32Array,
  ib: number,
  lb: number,
): void {
  const end = o + len;
  if (la === 1 && lb === 1) {
    const d = ib - o;
    const c = ia - o;
    switch (op) {
      case 'add':
        for (let j = o; j < end; j++) out[j] = A[j + c] + B[j + d];
        return;
      case 'sub':
        for (let j = o; j < end; j++) out[j] = A[j + c] - B[j + d];
        return;
      case 'mul':
        for (let j = o; j < end; j++) out[j] = A[j + c] * B[j + d];
        return;
      case 'div':
        for (let j = o; j < end; j++) out[j] = A[j + c] / B[j + d];
        return;
      default:
    }
  }
  if (la === 1 && lb === 0) {
    const y = B[ib];
    const c = ia - o;
    switch (op) {
      case 'add':
        for (let j = o; j < end; j++) out[j] = A[j + c] + y;
        return;
      case 'sub':
        for (let j = o; j < end; j++) out[j] = A[j + c] - y;
        return;
      case 'mul':
        for (let j = o; j < end; j++) out[j] = A[j + c] * y;
        return;
      case 'div':
        for (let j = o; j < end; j++) out[j] = A[j + c] / y;
        return;
      default:
    }
  }
  switch (op) {
    case 'add':
      for (let j = o; j < end; j++, ia += la, ib += lb) out[j] = A[ia] + B[ib];
      return;
    case 'sub':
      for (let j = o; j < end; j++, ia += la, ib += lb) out[j] = A[ia] - B[ib];
      return;
    case 'mul':
      for (let j = o; j < end; j++, ia += la, ib += lb) out[j] = A[ia] * B[ib];
      return;
    case 'div':
      for (let j = o; j < end; j++, ia += la, ib += lb) out[j] = A[ia] / B[ib];
      return;
    case 'pow':
      for (let j = o; j < end; j++, ia += la, ib += lb) out[j] = Math.pow(A[ia], B[ib]);
      return;
    case 'maximum':
      for (let j = o; j < end; j++, ia += la, ib += lb) {
        const x = A[ia];
        const y = B[ib];
        out[j] = x !== x || y !== y ? NaN : x > y ? x : y;
      }
      return;
    case 'minimum':
      for (let j = o; j < end; j++, ia += la, ib += lb) {
        const x = A[ia];
        const y = B[ib];
        out[j] = x !== x || y !== y ? NaN : x < y ? x : y;
      }
      return;
    default:
  }
}

export function fastBinary(op: BinaryOp, a: WView, b: WView, outDtype: DType): TypedArray | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || outDtype !== 'float32' || !BINARY_OK.has(op)) return null;
  const n = numel(a.shape);
  const out = pool.f32(n);
  const A = a.storage as Float32Array;
  const B = b.storage as Float32Array;
  const r = a.shape.length;
  if (r > 0 && isContiguous(a.shape, a.strides) && (isContiguous(b.shape, b.strides) || b.strides.every((x) => x === 0))) {
    binaryRow(op, out, 0, n, A, a.offset, 1, B, b.offset, b.strides.every((x) => x === 0) ? 0 : 1);
    return out;
  }
  const la = r ? a.strides[r - 1] : 1;
  const lb = r ? b.strides[r - 1] : 1;
  forRows(a.shape, a.strides, a.offset, b.strides, b.offset, (ia, ib, o, len) => binaryRow(op, out, o, len, A, ia, la, B, ib, lb));
  return out;
}

/**
 * Any f32 reduction: dims merged where memory allows, then per output element an odometer over
 * the reduced dims with the innermost one as a tight loop (f64 accumulation for sums).
 */
function generalReduce(op: ReduceOp, x: WView, axes: readonly number[]): Float32Array {
  const dims: { size: number; stride: number; red: boolean }[] = [];
  x.shape.forEach((size, i) => {
    if (size === 1) return;
    const red = axes.includes(i);
    const last = dims[dims.length - 1];
    if (last && last.red === red && last.stride === x.strides[i] * size) {
      last.size *= size;
      last.stride = x.strides[i];
    } else dims.push({ size, stride: x.strides[i], red });
  });
  const kept = dims.filter((d) => !d.red);
  const red = dims.filter((d) => d.red);
  const nOut = kept.reduce((a, d) => a * d.size, 1);
  const out = pool.f32(nOut);
  const s = x.storage as Float32Array;
  const inner = red.length ? red[red.length - 1] : { size: 1, stride: 0 };
  const outer = red.slice(0, -1);
  const nOuter = outer.reduce((a, d) => a * d.size, 1);
  const kIdx = new Array<number>(kept.length).fill(0);
  const rIdx = new Array<number>(outer.length).fill(0);
  let kBase = x.offset;
  for (let o = 0; o < nOut; o++) {
    let acc = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
    rIdx.fill(0);
    let base = kBase;
    for (let r = 0; r < nOuter; r++) {
      const st = inner.stride;
      if (op === 'sum') for (let j = 0, p = base; j < inner.size; j++, p += st) acc += s[p];
      else
        for (let j = 0, p = base; j < inner.size; j++, p += st) {
          const v = s[p];
          if (v !== v || acc !== acc) acc = NaN;
          else if (op === 'max' ? v > acc : v < acc) acc = v;
        }
      for (let d = outer.length - 1; d >= 0; d--) {
        base += outer[d].stride;
        if (++rIdx[d] < outer[d].size) break;
        base -= outer[d].stride * outer[d].size;
        rIdx[d] = 0;
      }
    }
    out[o] = acc;
    for (let d = kept.length - 1; d >= 0; d--) {
      kBase += kept[d].stride;
      if (++kIdx[d] < kept[d].size) break;
      kBase -= kept[d].stride * kept[d].size;
      kIdx[d] = 0;
    }
  }
  return out;
}

/** Reductions of an f32 view; contiguous suffix (rows) and prefix (columns) cases have tight loops. */
export function fastReduce(op: ReduceOp, x: WView, axes: readonly number[]): TypedArray | null {
  if (x.dtype !== 'float32' || axes.length === 0) return null;
  if (numel(x.shape) === 0) return null;
  if (!isContiguous(x.shape, x.strides)) return generalReduce(op, x, axes);
  const rank = x.shape.length;
  const suffix = axes.every((ax, i) => ax === rank - axes.length + i);
  const prefix = axes.every((ax, i) => ax === i);
  if (!suffix && !prefix) return generalReduce(op, x, axes);
  const s = x.storage as Float32Array;
  const base = x.offset;
  const red = numel(axes.map((a) => x.shape[a]));
  const keep = numel(x.shape) / Math.max(1, red);
  if (red === 0 || !Number.isFinite(keep)) return null;
  const out = pool.f32(keep);
  if (suffix) {
    for (let r = 0; r < keep; r++) {
      const o = base + r * red;
      if (op === 'sum') {
        let acc = 0;
        for (let i = 0; i < red; i++) acc += s[o + i];
        out[r] = acc;
      } else {
        let m = op === 'max' ? -Infinity : Infinity;
        for (let i = 0; i < red; i++) {
          const v = s[o + i];
          if (v !== v) {
            m = NaN;
            break;
          }
          if (op === 'max' ? v > m : v < m) m = v;
        }
        out[r] = m;
      }
    }
    return out;
  }
  // prefix: out[c] = reduce over rows of a [red, keep] matrix
  const acc = new Float64Array(keep).fill(op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity);
  for (let r = 0; r < red; r++) {
    const o = base + r * keep;
    if (op === 'sum') for (let c = 0; c < keep; c++) acc[c] += s[o + c];
    else
      for (let c = 0; c < keep; c++) {
        const v = s[o + c];
        const m = acc[c];
        if (v !== v || m !== m) acc[c] = NaN;
        else if (op === 'max' ? v > m : v < m) acc[c] = v;
      }
  }
  out.set(acc);
  return out;
}

/** `dst` window ← `src` for f32 views of one shape (cat, pad, slice gradients). */
export function fastCopyInto(dst: WView, src: WView): boolean {
  if (dst.dtype !== 'float32' || src.dtype !== 'float32') return false;
  const D = dst.storage as Float32Array;
  const S = src.storage as Float32Array;
  const r = dst.shape.length;
  const ld = r ? dst.strides[r - 1] : 1;
  const ls = r ? src.strides[r - 1] : 1;
  forRows(dst.shape, dst.strides, dst.offset, src.strides, src.offset, (od, os, _o, len) => {
    if (ld === 1 && ls === 1) D.set(S.subarray(os, os + len), od);
    else for (let j = 0; j < len; j++) D[od + j * ld] = S[os + j * ls];
  });
  return true;
}

/** where(cond, a, b) for f32 a/b and a bool cond, all expanded to one shape. */
export function fastWhere(cond: WView, a: WView, b: WView, outDtype: DType): TypedArray | null {
  if (outDtype !== 'float32' || a.dtype !== 'float32' || b.dtype !== 'float32' || cond.dtype !== 'bool') return null;
  const n = numel(a.shape);
  const out = pool.f32(n);
  const A = a.storage as Float32Array;
  const B = b.storage as Float32Array;
  const Cd = cond.storage as Uint8Array;
  const r = a.shape.length;
  const la = r ? a.strides[r - 1] : 1;
  const lb = r ? b.strides[r - 1] : 1;
  const lc = r ? cond.strides[r - 1] : 1;
  // Rows of a and cond through the odometer; b's row offsets from a second pass over (b, cond).
  const bOffs: number[] = [];
  forRows(a.shape, b.strides, b.offset, b.strides, b.offset, (ib) => {
    bOffs.push(ib);
  });
  let row = 0;
  forRows(a.shape, a.strides, a.offset, cond.strides, cond.offset, (ia, ic, o, len) => {
    let ib = bOffs[row++];
    for (let j = o; j < o + len; j++, ia += la, ib += lb, ic += lc) out[j] = Cd[ic] !== 0 ? A[ia] : B[ib];
  });
  return out;
}
