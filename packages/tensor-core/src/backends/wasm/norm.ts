/**
 * layerNorm and groupNorm(+SiLU) on the wasm engine (f32), forward and backward: SIMD kernels in
 * scratch when the normalised rows (layerNorm) or spatial planes (groupNorm) are a multiple of 4
 * long; otherwise JS f32 loops (forward) or the cpu reference kernel (backward).
 */
import { numel } from '../../shape.js';
import { pool } from './bufpool.js';
import { GNORM, GNORM_BWD, LNORM, LNORM_BWD, SUM_ROWS } from './kernels.js';
import { bitsOf, contig } from './staging.js';
import type { Scratch, WView } from './staging.js';
import { STREAM_CHUNK_FLOATS, stream } from './stream.js';

/**
 * Single-thread cost estimates of the kernels (µs per element, measured on a 2-vCPU EPYC), for
 * `engine.threadsFor`: small norms run on the calling thread without waking the workers.
 */
const US_PER_ELEMENT = {
  layerNorm: 2.7e-4,
  groupNorm: 3e-4,
  groupNormSilu: 9e-4,
  layerNormBwd: 6e-4,
  groupNormBwd: 7e-4,
  groupNormSiluBwd: 1.8e-3,
};

/** A kernel descriptor of `fields`' length, every field 0 until set. */
const zeroDesc = (fields: Record<string, number>): number[] => new Array<number>(Object.keys(fields).length).fill(0);

/**
 * Whether the SIMD kernels take this shape: rows of a multiple of 4 (the kernels have no scalar
 * tail), with one row's three staged arrays well inside the scratch. Other shapes take JS loops
 * (forward) or the cpu reference kernel (backward).
 */
export function simdNormOk(scratch: Scratch, total: number, rowLen: number): boolean {
  return rowLen % 4 === 0 && rowLen > 0 && total > 0 && rowLen * 16 < scratch.engine.maxScratch;
}

/**
 * layerNorm over the trailing `normSize` elements of an f32 view; where `stats` (in the engine's
 * heap, 2 floats per row) is given, the SIMD kernel also writes each row's mean and 1/std there.
 */
export function layerNormForward(
  scratch: Scratch,
  x: WView,
  weight: WView | null,
  bias: WView | null,
  normSize: number,
  eps: number,
  stats: Float32Array | null = null,
): Float32Array {
  const total = numel(x.shape);
  if (simdNormOk(scratch, total, normSize)) {
    const e = scratch.engine;
    e.reset();
    const ws = weight ? scratch.stageContig(weight) : 0;
    const bs = bias ? scratch.stageContig(bias) : 0;
    const d = zeroDesc(LNORM);
    d[LNORM.size] = normSize;
    d[LNORM.w] = ws;
    d[LNORM.b] = bs;
    d[LNORM.eps] = bitsOf(eps);
    d[LNORM.stats] = statsAddr(e, stats);
    const out = pool.f32(total);
    stream(e, {
      ins: [contig(x)],
      extra: 1,
      outs: [[1, out]],
      units: total / normSize,
      len: normSize,
      usPerUnit: normSize * US_PER_ELEMENT.layerNorm,
      task: 'task_layernorm',
      desc: d,
      slotFields: [LNORM.x, LNORM.y],
      countField: LNORM.rows,
      firstField: LNORM.first,
      nextField: LNORM.next,
    });
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
export function groupNormForward(
  scratch: Scratch,
  x: WView,
  groups: number,
  weight: WView | null,
  bias: WView | null,
  eps: number,
  silu: boolean,
): Float32Array {
  const spatialSize = numel(x.shape.slice(2));
  const total = numel(x.shape);
  const [N, C] = x.shape;
  const unitLen = (C / groups) * spatialSize;
  if (spatialSize % 4 === 0 && simdNormOk(scratch, total, unitLen)) {
    const e = scratch.engine;
    e.reset();
    const ws = weight ? scratch.stageContig(weight) : 0;
    const bs = bias ? scratch.stageContig(bias) : 0;
    const d = zeroDesc(GNORM);
    d[GNORM.C] = C;
    d[GNORM.spatial] = spatialSize;
    d[GNORM.groups] = groups;
    d[GNORM.w] = ws;
    d[GNORM.b] = bs;
    d[GNORM.eps] = bitsOf(eps);
    d[GNORM.silu] = silu ? 1 : 0;
    const out = pool.f32(total);
    stream(e, {
      ins: [contig(x)],
      extra: 1,
      outs: [[1, out]],
      units: N * groups,
      len: unitLen,
      usPerUnit: unitLen * (silu ? US_PER_ELEMENT.groupNormSilu : US_PER_ELEMENT.groupNorm),
      task: 'task_groupnorm',
      desc: d,
      slotFields: [GNORM.x, GNORM.y],
      countField: GNORM.units,
      firstField: GNORM.first,
      nextField: GNORM.next,
    });
    return out;
  }
  const v = contig(x);
  const w = weight && contig(weight);
  const b = bias && contig(bias);
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

/** out[i] = Σ_r f32[src/4 + r·len + i] for r < rows: the partial sums the kernels leave per block or image, in order. */
function sumRows(e: Scratch['engine'], src: number, rows: number, len: number): Float32Array {
  const d = zeroDesc(SUM_ROWS);
  d[SUM_ROWS.src] = src;
  d[SUM_ROWS.rows] = rows;
  d[SUM_ROWS.len] = len;
  const at = e.alloc(len * 4);
  d[SUM_ROWS.out] = at;
  e.run('task_sum_rows', e.desc(d), 1);
  const out = pool.f32(len);
  out.set(e.f32.subarray(at / 4, at / 4 + len));
  return out;
}

/** The staged weight and bias and room for `partials` dweight and dbias partial sums (the kernels write every one): the first allocations after `reset()`. */
function stageBackward(scratch: Scratch, weight: WView | null, bias: WView | null, partials: number) {
  const e = scratch.engine;
  e.reset();
  const ws = weight ? scratch.stageContig(weight) : 0;
  const bs = bias ? scratch.stageContig(bias) : 0;
  const dwp = e.alloc(partials * 4);
  const dbp = e.alloc(partials * 4);
  return { ws, bs, dwp, dbp };
}

/** dweight/dbias summed from `rows` partial rows of `len` (where the op has a weight or a bias). */
function sums(
  scratch: Scratch,
  weight: WView | null,
  bias: WView | null,
  dwp: number,
  dbp: number,
  rows: number,
  len: number,
): [Float32Array | null, Float32Array | null] {
  const e = scratch.engine;
  return [weight ? sumRows(e, dwp, rows, len) : null, bias ? sumRows(e, dbp, rows, len) : null];
}

/** At most this many dweight/dbias partial rows per layerNorm backward (the host sums them). */
const LN_PARTIALS = 64;

/** The byte address of saved statistics for a kernel's descriptor (0: none); they must lie in the engine's heap. */
function statsAddr(e: Scratch['engine'], stats: Float32Array | null): number {
  if (!stats) return 0;
  const at = e.heapAddr(stats);
  if (at < 0) throw new Error('wasm backend: layerNorm statistics must lie in the engine heap');
  return at;
}

/**
 * layerNorm gradients of f32 views: [dx, dweight | null, dbias | null]. `stats` are the forward's
 * (`layerNormForward`), or null to compute them again.
 */
export function layerNormBackward(
  scratch: Scratch,
  x: WView,
  weight: WView | null,
  bias: WView | null,
  normSize: number,
  eps: number,
  gy: WView,
  stats: Float32Array | null = null,
): [Float32Array, Float32Array | null, Float32Array | null] {
  const e = scratch.engine;
  const rows = numel(x.shape) / normSize;
  // Rows per partial row: ≤ LN_PARTIALS partials, and a block never spans two chunks.
  const block = Math.max(1, Math.min(Math.ceil(rows / LN_PARTIALS), Math.floor(STREAM_CHUNK_FLOATS / normSize)));
  const blocks = Math.ceil(rows / block);
  const { ws, dwp, dbp } = stageBackward(scratch, weight, null, blocks * normSize);
  const d = zeroDesc(LNORM_BWD);
  const D = LNORM_BWD;
  d[D.size] = normSize;
  d[D.w] = ws;
  d[D.eps] = bitsOf(eps);
  d[D.dwp] = dwp;
  d[D.dbp] = dbp;
  d[D.block] = block;
  d[D.stats] = statsAddr(e, stats);
  const dx = pool.f32(rows * normSize);
  stream(e, {
    ins: [contig(x), contig(gy)],
    extra: 1,
    outs: [[2, dx]],
    units: rows,
    len: normSize,
    align: block,
    usPerUnit: normSize * US_PER_ELEMENT.layerNormBwd,
    task: 'task_layernorm_bwd',
    desc: d,
    slotFields: [D.x, D.gy, D.dx],
    countField: D.rows,
    firstField: D.firstBlock,
    nextField: D.next,
  });
  return [dx, ...sums(scratch, weight, bias, dwp, dbp, blocks, normSize)];
}

/** groupNorm(+SiLU) gradients of f32 views [N, C, *]: [dx, dweight | null, dbias | null]. */
export function groupNormBackward(
  scratch: Scratch,
  x: WView,
  groups: number,
  weight: WView | null,
  bias: WView | null,
  eps: number,
  silu: boolean,
  gy: WView,
): [Float32Array, Float32Array | null, Float32Array | null] {
  const e = scratch.engine;
  const [N, C] = x.shape;
  const spatial = numel(x.shape) / (N * C);
  const unitLen = (C / groups) * spatial;
  const { ws, bs, dwp, dbp } = stageBackward(scratch, weight, bias, N * C);
  const d = zeroDesc(GNORM_BWD);
  const D = GNORM_BWD;
  d[D.C] = C;
  d[D.spatial] = spatial;
  d[D.groups] = groups;
  d[D.w] = ws;
  d[D.b] = bs;
  d[D.eps] = bitsOf(eps);
  d[D.silu] = silu ? 1 : 0;
  d[D.dwp] = dwp;
  d[D.dbp] = dbp;
  const dx = pool.f32(N * groups * unitLen);
  stream(e, {
    ins: [contig(x), contig(gy)],
    extra: 1,
    outs: [[2, dx]],
    units: N * groups,
    len: unitLen,
    usPerUnit: unitLen * (silu ? US_PER_ELEMENT.groupNormSiluBwd : US_PER_ELEMENT.groupNormBwd),
    task: 'task_groupnorm_bwd',
    desc: d,
    slotFields: [D.x, D.gy, D.dx],
    countField: D.units,
    firstField: D.first,
    nextField: D.next,
  });
  return [dx, ...sums(scratch, weight, bias, dwp, dbp, N, C)];
}
