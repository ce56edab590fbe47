import type { AdamWHyper, Backend, BinaryOp, Conv2dParams, ReduceOp, UnaryOp } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { philoxFill } from '../../random.js';
import { contiguousStrides, conv2dOutputShape, convDims, numel } from '../../shape.js';
import { conv2dForward, conv2dInputGrad, conv2dWeightGrad } from './conv.js';
import { BINARY, UNARY } from './elementwise.js';
import { attentionBackward, attentionForward } from './attention.js';
import type { AttentionDims } from './attention.js';
import { normBackward, normForward } from './norm.js';
import type { ChannelOf } from './norm.js';
import { allocTyped, encoder, load, offsets, store } from './strided.js';
import type { CpuView } from './strided.js';

/**
 * The reference backend: plain TypeScript, f64 arithmetic, results rounded to the storage dtype.
 * Written to be obviously correct rather than fast; every other backend is tested against it.
 *
 * @example
 * ```ts
 * k.registerBackend('cpu-oracle', () => new k.CpuBackend()); // a second reference backend, e.g. with kernels hidden in a test
 * ```
 */
export class CpuBackend implements Backend<TypedArray> {
  readonly name = 'cpu';

  alloc(dtype: DType, size: number): TypedArray {
    return allocTyped(dtype, size);
  }

  upload(dtype: DType, data: TypedArray): TypedArray {
    const out = allocTyped(dtype, data.length);
    out.set(data);
    return out;
  }

  async download(x: CpuView): Promise<TypedArray> {
    const idx = offsets(x.shape, x.strides, x.offset);
    const n = numel(x.shape);
    const out = allocTyped(x.dtype, n);
    if (idx === null) out.set(x.storage.subarray(x.offset, x.offset + n));
    else for (let i = 0; i < n; i++) out[i] = x.storage[idx[i]];
    return out;
  }

  free(): void {
    // Garbage-collected.
  }

  fill(dtype: DType, size: number, value: number): TypedArray {
    const out = allocTyped(dtype, size);
    out.fill(encoder(dtype)?.(value) ?? value);
    return out;
  }

  random(dist: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], counter: number): TypedArray {
    return store(dtype, philoxFill(dist, new Float64Array(size), key, counter));
  }

  unary(op: UnaryOp, x: CpuView, outDtype: DType): TypedArray {
    const v = load(x);
    const f = UNARY[op];
    if (op !== 'copy') for (let i = 0; i < v.length; i++) v[i] = f(v[i]);
    return store(outDtype, v);
  }

  binary(op: BinaryOp, a: CpuView, b: CpuView, outDtype: DType): TypedArray {
    const va = load(a);
    const vb = load(b);
    const f = BINARY[op];
    for (let i = 0; i < va.length; i++) va[i] = f(va[i], vb[i]);
    return store(outDtype, va);
  }

  where(cond: CpuView, a: CpuView, b: CpuView, outDtype: DType): TypedArray {
    const c = load(cond);
    const va = load(a);
    const vb = load(b);
    for (let i = 0; i < va.length; i++) if (c[i] === 0) va[i] = vb[i];
    return store(outDtype, va);
  }

  reduce(op: ReduceOp, x: CpuView, axes: readonly number[]): TypedArray {
    const v = load(x);
    const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const kept = contiguousStrides(keptShape).map((s, i) => (axes.includes(i) ? 0 : s));
    const outIdx = offsets(x.shape, kept, 0) ?? Int32Array.from({ length: v.length }, (_, i) => i);
    const out = new Float64Array(numel(keptShape)).fill(op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity);
    for (let i = 0; i < v.length; i++) {
      const o = outIdx[i];
      if (op === 'sum') out[o] += v[i];
      else if (Number.isNaN(v[i]) || Number.isNaN(out[o])) out[o] = NaN;
      else if (op === 'max' ? v[i] > out[o] : v[i] < out[o]) out[o] = v[i];
    }
    return store(x.dtype, out);
  }

  matmul(a: CpuView, b: CpuView): TypedArray {
    const [B, M, K] = a.shape;
    const N = b.shape[2];
    const va = load(a);
    const vb = load(b);
    const out = new Float64Array(B * M * N);
    for (let bi = 0; bi < B; bi++)
      for (let i = 0; i < M; i++) {
        const orow = (bi * M + i) * N;
        for (let k = 0; k < K; k++) {
          const aik = va[(bi * M + i) * K + k];
          if (aik === 0) continue;
          const brow = (bi * K + k) * N;
          for (let j = 0; j < N; j++) out[orow + j] += aik * vb[brow + j];
        }
      }
    return store(a.dtype, out);
  }

  conv2d(x: CpuView, w: CpuView, p: Conv2dParams): TypedArray {
    return store(x.dtype, conv2dForward(load(x), load(w), convDims(x.shape, w.shape, conv2dOutputShape(x.shape, w.shape, p)), p));
  }

  conv2dInputGrad(gy: CpuView, w: CpuView, inputShape: readonly number[], p: Conv2dParams): TypedArray {
    return store(gy.dtype, conv2dInputGrad(load(gy), load(w), convDims(inputShape, w.shape, gy.shape), p));
  }

  conv2dWeightGrad(x: CpuView, gy: CpuView, weightShape: readonly number[], p: Conv2dParams): TypedArray {
    return store(x.dtype, conv2dWeightGrad(load(x), load(gy), convDims(x.shape, weightShape, gy.shape), p));
  }

  copyInto(dst: CpuView, src: CpuView): void {
    const v = load(src);
    const enc = encoder(dst.dtype);
    const idx = offsets(dst.shape, dst.strides, dst.offset);
    const out = dst.storage;
    for (let i = 0; i < v.length; i++) {
      const o = idx === null ? dst.offset + i : idx[i];
      out[o] = enc ? enc(v[i]) : v[i];
    }
  }

  gatherRows(table: CpuView, index: CpuView): TypedArray {
    const [R, C] = table.shape;
    const t = load(table);
    const ids = load(index);
    const out = new Float64Array(ids.length * C);
    for (let n = 0; n < ids.length; n++) {
      const r = ids[n];
      if (r < 0 || r >= R) throw new RangeError(`index ${r} is out of range for ${R} rows`);
      out.set(t.subarray(r * C, r * C + C), n * C);
    }
    return store(table.dtype, out);
  }

  scatterAddRows(src: CpuView, index: CpuView, rows: number): TypedArray {
    const C = src.shape[1];
    const s = load(src);
    const ids = load(index);
    const out = new Float64Array(rows * C);
    for (let n = 0; n < ids.length; n++) {
      const r = ids[n];
      for (let c = 0; c < C; c++) out[r * C + c] += s[n * C + c];
    }
    return store(src.dtype, out);
  }

  softmax(x: CpuView, log: boolean): TypedArray {
    const v = load(x);
    const D = x.shape[x.shape.length - 1];
    for (let r = 0; r < v.length; r += D) {
      let m = -Infinity;
      for (let i = 0; i < D; i++) m = Math.max(m, v[r + i]);
      let s = 0;
      for (let i = 0; i < D; i++) s += Math.exp(v[r + i] - m);
      for (let i = 0; i < D; i++) v[r + i] = log ? v[r + i] - m - Math.log(s) : Math.exp(v[r + i] - m) / s;
    }
    return store(x.dtype, v);
  }

  layerNorm(x: CpuView, weight: CpuView | null, bias: CpuView | null, normSize: number, eps: number): TypedArray {
    const rows = numel(x.shape) / normSize;
    const y = normForward(load(x), weight && load(weight), bias && load(bias), rows, normSize, (_, i) => i, eps, false);
    return store(x.dtype, y);
  }

  groupNorm(x: CpuView, groups: number, weight: CpuView | null, bias: CpuView | null, eps: number, silu: boolean): TypedArray {
    const g = groupGeometry(x.shape, groups);
    const y = normForward(load(x), weight && load(weight), bias && load(bias), g.count, g.size, g.channelOf, eps, silu);
    return store(x.dtype, y);
  }

  layerNormBackward(
    x: CpuView,
    weight: CpuView | null,
    bias: CpuView | null,
    normSize: number,
    eps: number,
    gy: CpuView,
  ): [TypedArray, TypedArray | null, TypedArray | null] {
    const rows = numel(x.shape) / normSize;
    const w = weight && load(weight);
    const [dx, dw, db] = normBackward(load(x), w, bias && load(bias), load(gy), rows, normSize, normSize, (_, i) => i, eps, false);
    return [store(x.dtype, dx), weight && store(weight.dtype, dw), bias && store(bias.dtype, db)];
  }

  groupNormBackward(
    x: CpuView,
    groups: number,
    weight: CpuView | null,
    bias: CpuView | null,
    eps: number,
    silu: boolean,
    gy: CpuView,
  ): [TypedArray, TypedArray | null, TypedArray | null] {
    const g = groupGeometry(x.shape, groups);
    const w = weight && load(weight);
    const [dx, dw, db] = normBackward(load(x), w, bias && load(bias), load(gy), g.count, g.size, x.shape[1], g.channelOf, eps, silu);
    return [store(x.dtype, dx), weight && store(weight.dtype, dw), bias && store(bias.dtype, db)];
  }

  attention(q: CpuView, k: CpuView, v: CpuView, mask: CpuView | null, causal: boolean, scale: number): TypedArray {
    const y = attentionForward(load(q), load(k), load(v), mask && load(mask), attentionDims(q, k, v), causal, scale);
    return store(q.dtype, y);
  }

  attentionBackward(
    q: CpuView,
    k: CpuView,
    v: CpuView,
    mask: CpuView | null,
    causal: boolean,
    scale: number,
    gy: CpuView,
  ): [TypedArray, TypedArray, TypedArray] {
    const dims = attentionDims(q, k, v);
    const grads = attentionBackward(load(q), load(k), load(v), mask && load(mask), load(gy), dims, causal, scale);
    return [store(q.dtype, grads[0]), store(q.dtype, grads[1]), store(q.dtype, grads[2])];
  }

  adamw(param: TypedArray, grad: CpuView, m: TypedArray, v: TypedArray, size: number, dtype: DType, hp: AdamWHyper): void {
    const shape = [size];
    const strides = [1];
    const p = load({ storage: param, dtype, shape, strides, offset: 0 });
    const g = load(grad);
    const mm = load({ storage: m, dtype, shape, strides, offset: 0 });
    const vv = load({ storage: v, dtype, shape, strides, offset: 0 });
    const bc1 = 1 - hp.beta1 ** hp.step;
    const bc2 = 1 - hp.beta2 ** hp.step;
    for (let i = 0; i < size; i++) {
      p[i] *= 1 - hp.lr * hp.weightDecay;
      mm[i] = hp.beta1 * mm[i] + (1 - hp.beta1) * g[i];
      vv[i] = hp.beta2 * vv[i] + (1 - hp.beta2) * g[i] * g[i];
      p[i] -= (hp.lr * (mm[i] / bc1)) / (Math.sqrt(vv[i] / bc2) + hp.eps);
    }
    param.set(store(dtype, p));
    m.set(store(dtype, mm));
    v.set(store(dtype, vv));
  }
}

/** groupNorm's x [N, C, *] as N·groups runs of (C/groups)·spatial elements, and each element's channel. */
function groupGeometry(shape: readonly number[], groups: number): { count: number; size: number; channelOf: ChannelOf } {
  const [N, C] = shape;
  const spatial = numel(shape.slice(2));
  const cg = C / groups;
  return { count: N * groups, size: cg * spatial, channelOf: (g, i) => (g % groups) * cg + Math.floor(i / spatial) };
}

function attentionDims(q: CpuView, k: CpuView, v: CpuView): AttentionDims {
  const [B, Lq, E] = q.shape;
  return { B, Lq, E, Lk: k.shape[1], Ev: v.shape[2] };
}
