import type { AdamWHyper, Backend, BinaryOp, Conv2dParams, ReduceOp, UnaryOp } from '../../backend.js';
import type { DType, TypedArray } from '../../dtype.js';
import { philoxFill } from '../../random.js';
import { contiguousStrides, numel } from '../../shape.js';
import { conv2dForward, conv2dInputGrad, conv2dWeightGrad, dims } from './conv.js';
import { BINARY, UNARY } from './elementwise.js';
import { allocTyped, encoder, load, offsets, store } from './strided.js';
import type { CpuView } from './strided.js';

/**
 * The reference backend: plain TypeScript, f64 arithmetic, results rounded to the storage dtype.
 * Written to be obviously correct rather than fast; every other backend is tested against it.
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
    const [N, , H, W] = x.shape;
    const [O, , kh, kw] = w.shape;
    const Ho = Math.floor((H + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
    const Wo = Math.floor((W + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
    return store(x.dtype, conv2dForward(load(x), load(w), dims(x.shape, w.shape, [N, O, Ho, Wo]), p));
  }

  conv2dInputGrad(gy: CpuView, w: CpuView, inputShape: readonly number[], p: Conv2dParams): TypedArray {
    return store(gy.dtype, conv2dInputGrad(load(gy), load(w), dims(inputShape, w.shape, gy.shape), p));
  }

  conv2dWeightGrad(x: CpuView, gy: CpuView, weightShape: readonly number[], p: Conv2dParams): TypedArray {
    return store(x.dtype, conv2dWeightGrad(load(x), load(gy), dims(x.shape, weightShape, gy.shape), p));
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
    const v = load(x);
    const w = weight && load(weight);
    const b = bias && load(bias);
    for (let r = 0; r < v.length; r += normSize) {
      let mean = 0;
      for (let i = 0; i < normSize; i++) mean += v[r + i];
      mean /= normSize;
      let vr = 0;
      for (let i = 0; i < normSize; i++) vr += (v[r + i] - mean) ** 2;
      const rstd = 1 / Math.sqrt(vr / normSize + eps);
      for (let i = 0; i < normSize; i++) v[r + i] = (v[r + i] - mean) * rstd * (w ? w[i] : 1) + (b ? b[i] : 0);
    }
    return store(x.dtype, v);
  }

  groupNorm(x: CpuView, groups: number, weight: CpuView | null, bias: CpuView | null, eps: number, silu: boolean): TypedArray {
    const v = load(x);
    const w = weight && load(weight);
    const b = bias && load(bias);
    const [N, C] = x.shape;
    const spatial = numel(x.shape.slice(2));
    const cg = C / groups;
    const size = cg * spatial;
    for (let n = 0; n < N; n++)
      for (let g = 0; g < groups; g++) {
        const base = (n * C + g * cg) * spatial;
        let mean = 0;
        for (let i = 0; i < size; i++) mean += v[base + i];
        mean /= size;
        let vr = 0;
        for (let i = 0; i < size; i++) vr += (v[base + i] - mean) ** 2;
        const rstd = 1 / Math.sqrt(vr / size + eps);
        for (let i = 0; i < size; i++) {
          const c = g * cg + Math.floor(i / spatial);
          let y = (v[base + i] - mean) * rstd * (w ? w[c] : 1) + (b ? b[c] : 0);
          if (silu) y = y / (1 + Math.exp(-y));
          v[base + i] = y;
        }
      }
    return store(x.dtype, v);
  }

  attention(q: CpuView, k: CpuView, v: CpuView, mask: CpuView | null, causal: boolean, scale: number): TypedArray {
    const [B, Lq, E] = q.shape;
    const Lk = k.shape[1];
    const Ev = v.shape[2];
    const vq = load(q);
    const vk = load(k);
    const vv = load(v);
    const vm = mask && load(mask);
    const out = new Float64Array(B * Lq * Ev);
    const s = new Float64Array(Lk);
    for (let bi = 0; bi < B; bi++)
      for (let i = 0; i < Lq; i++) {
        let m = -Infinity;
        for (let j = 0; j < Lk; j++) {
          let dot = 0;
          for (let e = 0; e < E; e++) dot += vq[(bi * Lq + i) * E + e] * vk[(bi * Lk + j) * E + e];
          let sj = dot * scale + (vm ? vm[(bi * Lq + i) * Lk + j] : 0);
          if (causal && j > i) sj = -Infinity; // top-left aligned, as torch
          s[j] = sj;
          m = Math.max(m, sj);
        }
        let sum = 0;
        for (let j = 0; j < Lk; j++) sum += s[j] = m === -Infinity ? 0 : Math.exp(s[j] - m);
        for (let j = 0; j < Lk; j++) {
          const pj = s[j] / sum;
          for (let e = 0; e < Ev; e++) out[(bi * Lq + i) * Ev + e] += pj * vv[(bi * Lk + j) * Ev + e];
        }
      }
    return store(q.dtype, out);
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
