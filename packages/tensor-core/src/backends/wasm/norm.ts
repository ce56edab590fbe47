/**
 * layerNorm and groupNorm(+SiLU) on the wasm engine (f32): SIMD kernels in scratch when the
 * normalised rows are a multiple of 4 long, JS f32 loops otherwise.
 */
import { numel } from '../../shape.js';
import { pool } from './bufpool.js';
import { GNORM, LNORM } from './kernels.js';
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
