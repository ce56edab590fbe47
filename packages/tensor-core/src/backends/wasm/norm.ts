/**
 * layerNorm and groupNorm(+SiLU) on the wasm engine (f32), forward and backward: SIMD kernels in
 * scratch when the normalised rows (layerNorm) or spatial planes (groupNorm) are a multiple of 4
 * long; otherwise JS f32 loops (forward) or the cpu reference kernel (backward).
 */
import { numel } from '../../shape.js';
import { pool } from './bufpool.js';
import { GNORM, GNORM_BWD, LNORM, LNORM_BWD } from './kernels.js';
import { bitsOf, contig } from './staging.js';
import type { Scratch, WView } from './staging.js';

/** layerNorm over the trailing `normSize` elements of an f32 view. */
export function layerNormForward(scratch: Scratch, x: WView, weight: WView | null, bias: WView | null, normSize: number, eps: number): Float32Array {
  const total = numel(x.shape);
  if (normSize % 4 === 0 && normSize > 0 && total > 0 && total * 4 < scratch.engine.maxScratch / 2) {
    const e = scratch.engine;
    e.reset();
    const xs = scratch.stageContig(x);
    const ws = weight ? scratch.stageContig(weight) : 0;
    const bs = bias ? scratch.stageContig(bias) : 0;
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

/** groupNorm (+SiLU) of an f32 view [N, C, *]. */
export function groupNormForward(scratch: Scratch, x: WView, groups: number, weight: WView | null, bias: WView | null, eps: number, silu: boolean): Float32Array {
  const spatialSize = numel(x.shape.slice(2));
  const total = numel(x.shape);
  if (spatialSize % 4 === 0 && total > 0 && total * 4 < scratch.engine.maxScratch / 2) {
    const e = scratch.engine;
    e.reset();
    const xs = scratch.stageContig(x);
    const ws = weight ? scratch.stageContig(weight) : 0;
    const bs = bias ? scratch.stageContig(bias) : 0;
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

/** out[i] = Σ_r src[base + r·len + i] for r < rows (partial sums the kernels leave per thread or image). */
function sumRows(src: Float32Array, base: number, rows: number, len: number): Float32Array {
  const out = pool.f32(len).fill(0);
  for (let r = 0; r < rows; r++) {
    const o = base + r * len;
    for (let i = 0; i < len; i++) out[i] += src[o + i];
  }
  return out;
}

/** Scratch for a norm backward kernel: x, gy, weight staged; dx; dweight/dbias partials of `partials` floats. */
function stageBackward(scratch: Scratch, x: WView, gy: WView, weight: WView | null, partials: number) {
  const e = scratch.engine;
  e.reset();
  const xs = scratch.stageContig(x);
  const gs = scratch.stageContig(gy);
  const ws = weight ? scratch.stageContig(weight) : 0;
  const dx = e.alloc(numel(x.shape) * 4);
  return { xs, gs, ws, dx, dwp: e.alloc(partials * 4), dbp: e.alloc(partials * 4) };
}

/** A norm backward kernel's results: dx copied out, dweight/dbias summed from `rows` partial rows of `len`. */
function collect(
  scratch: Scratch,
  r: { dx: number; total: number; dwp: number; dbp: number; rows: number; len: number; weight: boolean; bias: boolean },
): [Float32Array, Float32Array | null, Float32Array | null] {
  const f = scratch.engine.f32;
  return [
    scratch.copyOut(r.dx, pool.f32(r.total)),
    r.weight ? sumRows(f, r.dwp / 4, r.rows, r.len) : null,
    r.bias ? sumRows(f, r.dbp / 4, r.rows, r.len) : null,
  ];
}

/**
 * Whether the SIMD backward kernels take this shape: rows of a multiple of 4 (the kernels have no
 * scalar tail) that fit the scratch. Other shapes go to the cpu reference kernel.
 */
export function simdNormOk(scratch: Scratch, total: number, rowLen: number): boolean {
  return rowLen % 4 === 0 && rowLen > 0 && total > 0 && total * 12 < scratch.engine.maxScratch;
}

/** layerNorm gradients of f32 views: [dx, dweight | null, dbias | null]. */
export function layerNormBackward(
  scratch: Scratch, x: WView, weight: WView | null, bias: WView | null, normSize: number, eps: number, gy: WView,
): [Float32Array, Float32Array | null, Float32Array | null] {
  const e = scratch.engine;
  const total = numel(x.shape);
  const T = e.threads;
  const { xs, gs, ws, dx, dwp, dbp } = stageBackward(scratch, x, gy, weight, T * normSize);
  const d = new Array<number>(9);
  const D = LNORM_BWD;
  d[D.x] = xs; d[D.gy] = gs; d[D.dx] = dx; d[D.rows] = total / normSize; d[D.size] = normSize; d[D.w] = ws; d[D.eps] = bitsOf(eps);
  d[D.dwp] = dwp; d[D.dbp] = dbp;
  e.run('task_layernorm_bwd', e.desc(d));
  return collect(scratch, { dx, total, dwp, dbp, rows: T, len: normSize, weight: weight !== null, bias: bias !== null });
}

/** groupNorm(+SiLU) gradients of f32 views [N, C, *]: [dx, dweight | null, dbias | null]. */
export function groupNormBackward(
  scratch: Scratch, x: WView, groups: number, weight: WView | null, bias: WView | null, eps: number, silu: boolean, gy: WView,
): [Float32Array, Float32Array | null, Float32Array | null] {
  const e = scratch.engine;
  const [N, C] = x.shape;
  const total = numel(x.shape);
  const { xs, gs, ws, dx, dwp, dbp } = stageBackward(scratch, x, gy, weight, N * C);
  const bs = bias ? scratch.stageContig(bias) : 0;
  const d = new Array<number>(13);
  const D = GNORM_BWD;
  d[D.x] = xs; d[D.gy] = gs; d[D.dx] = dx; d[D.N] = N; d[D.C] = C; d[D.spatial] = total / (N * C); d[D.groups] = groups;
  d[D.w] = ws; d[D.b] = bs; d[D.eps] = bitsOf(eps); d[D.silu] = silu ? 1 : 0; d[D.dwp] = dwp; d[D.dbp] = dbp;
  e.run('task_groupnorm_bwd', e.desc(d));
  return collect(scratch, { dx, total, dwp, dbp, rows: N, len: C, weight: weight !== null, bias: bias !== null });
}
