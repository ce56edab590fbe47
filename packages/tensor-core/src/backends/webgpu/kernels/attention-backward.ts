/**
 * Fused attention gradient, flash-attention style: the Lq×Lk probabilities are recomputed tile
 * by tile and never stored, and everything accumulates in f32.
 *
 * Two kernels, since WGSL has no float atomics to scatter dq from a key-major pass:
 * 1. per query row i (key/value tiles in workgroup memory): a first sweep gives the row's
 *    log-sum-exp and D_i = Σ_j P_ij dP_ij (dP_ij = dO_i·v_j) by online softmax; a second sweep
 *    gives dq_i = scale · Σ_j P_ij (dP_ij − D_i) k_j. The row statistics go to a small buffer.
 * 2. per key row j (query/dO tiles and their statistics in workgroup memory):
 *    dv_j = Σ_i P_ij dO_i and dk_j = scale · Σ_i P_ij (dP_ij − D_i) q_i.
 * A fully masked query row has no probabilities and passes no gradient, as on the cpu backend.
 * Each kernel binds at most 7 storage buffers besides its metadata (WebGPU's default limit is 8),
 * which is why dk and dv share one output that is then split (or, when that output would pass the
 * binding limit, kernel 2 runs once for each).
 */
import type { View } from '../../../backend.js';
import { BackendError } from '../../../errors.js';
import type { GpuContext } from '../context.js';
import type { GpuStorage } from '../pool.js';
import { attentionInputs, component, loadRow, stageRows, workgroupBudget } from './attention.js';
import { unary } from './elementwise.js';
import { gpuItemSize } from '../wgsl.js';

type GV = View<GpuStorage>;

/** Rows (query rows in kernel 1, key rows in kernel 2) per workgroup, one invocation each. */
const ROWS = 64;

/** WGSL helpers for vec4 (W = 4) or scalar (W = 1) head-dim registers. */
function vectorWgsl(E: number, Ev: number) {
  const W = E % 4 === 0 && Ev % 4 === 0 ? 4 : 1;
  const T = W === 4 ? 'vec4<f32>' : 'f32';
  const comp = component(W);
  const hsum = (d: string) => (W === 4 ? `(${d}.x + ${d}.y + ${d}.z + ${d}.w)` : d);
  const consts = `const E = ${E}u;
const EV = ${Ev}u;
const EW = ${E / W}u;
const EVW = ${Ev / W}u;
const ROWS = ${ROWS}u;
`;
  return { W, T, comp, hsum, consts };
}

/** Score of query `qi` against key `kj` (both absolute row indices in batch b), mask and causal applied. */
function scoreWgsl(mask: boolean): string {
  return `fn masked(s: f32, b: u32, qi: u32, kj: u32) -> f32 {
  var sc = s;
  ${mask ? 'sc = sc + ld_mk(idx_mk((b * md_Lq() + qi) * md_Lk() + kj));' : ''}
  if (md_causal() != 0u && kj > qi) { sc = ninf_f(); }
  return sc;
}
`;
}

export function attentionBackward(
  ctx: GpuContext,
  q: GV,
  k: GV,
  v: GV,
  mask: GV | null,
  causal: boolean,
  scale: number,
  gy: GV,
): [GpuStorage, GpuStorage, GpuStorage] {
  const [B, Lq, E] = q.shape;
  const Lk = k.shape[1];
  const Ev = v.shape[2];
  const dtype = q.dtype;
  const budget = workgroupBudget(ctx);
  const perRow = (E + Ev) * 4 + 8;
  if (perRow > budget) {
    throw new BackendError(
      `webgpu: attention gradient head dims E=${E}, Ev=${Ev} need ${perRow} bytes of workgroup memory per row, more than the ${budget} this kernel budgets; use head dims up to ${Math.floor((budget - 8) / 8)} or the cpu/wasm backend`,
    );
  }
  const tile = Math.max(1, Math.min(32, Math.floor(budget / perRow)));
  const dq = ctx.alloc(dtype, B * Lq * E);
  // Per query row: log-sum-exp and D, from kernel 1 to kernel 2.
  const stats = ctx.alloc('float32', 2 * Math.max(B * Lq, 1));
  const { W, T, comp, hsum, consts } = vectorWgsl(E, Ev);
  const score = scoreWgsl(mask !== null);
  const gyBinding = { name: 'gy', storage: gy.storage, dtype: gy.dtype, access: 'read' as const };
  const statsOf = (access: 'read' | 'write') => ({ name: 'st', storage: stats, dtype: 'float32' as const, access });

  if (B * Lq > 0) {
    // Kernel 1: statistics and dq, one invocation per query row, key/value tiles staged.
    const { meta, bindings } = attentionInputs(q, k, v, mask, causal, scale);
    meta.strided('gy', gy);
    const stage = `${stageRows(W, 'Ks', 'k', 'j0', 'TK', 'Lk', 'E', 'ROWS')}
    ${stageRows(W, 'Vs', 'v', 'j0', 'TK', 'Lk', 'EV', 'ROWS')}
    workgroupBarrier();`;
    const dots = `var d = ${T}(0.0);
        for (var e = 0u; e < EW; e = e + 1u) { d = d + qr[e] * Ks[jj * EW + e]; }
        let sc = masked(${hsum('d')}, b, row, j0 + jj);
        var g = ${T}(0.0);
        for (var e = 0u; e < EVW; e = e + 1u) { g = g + gr[e] * Vs[jj * EVW + e]; }
        let dp = ${hsum('g')};`;
    ctx.run({
      name: `attnBwdQ${W}:${E}:${Ev}:${tile}`,
      bindings: [...bindings, gyBinding, statsOf('write'), { name: 'dq', storage: dq, dtype, access: 'write' }],
      meta,
      code: () =>
        consts +
        score +
        `const TK = ${tile}u;
var<workgroup> Ks: array<${T}, ${(tile * E) / W}>;
var<workgroup> Vs: array<${T}, ${(tile * Ev) / W}>;
@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let Lq = md_Lq(); let Lk = md_Lk();
  let b = wid.y;
  let row = wid.x * ROWS + li;
  let valid = row < Lq;
  var qr: array<${T}, EW>;
  var gr: array<${T}, EVW>;
  var acc: array<${T}, EW>;
  ${loadRow(W, 'qr', 'q', 'row', 'Lq', 'E', ' * md_scale()')}
  ${loadRow(W, 'gr', 'gy', 'row', 'Lq', 'EV')}
  for (var e = 0u; e < EW; e = e + 1u) { acc[e] = ${T}(0.0); }
  // Sweep 1: running max m, Σ exp(s − m) and Σ exp(s − m)·dP.
  var m = ninf_f();
  var l = 0.0;
  var ld = 0.0;
  for (var j0 = 0u; j0 < Lk; j0 = j0 + TK) {
    ${stage}
    if (valid) {
      let jn = min(TK, Lk - j0);
      for (var jj = 0u; jj < jn; jj = jj + 1u) {
        ${dots}
        if (sc != ninf_f()) {
          let mn = max(m, sc);
          let corr = select(exp(m - mn), 0.0, m == ninf_f());
          let p = exp(sc - mn);
          l = l * corr + p;
          ld = ld * corr + p * dp;
          m = mn;
        }
      }
    }
    workgroupBarrier();
  }
  var lse = pinf_f();
  var D = 0.0;
  if (l > 0.0) { lse = m + log(l); D = ld / l; }
  if (valid) { st_st(2u * (b * Lq + row), lse); st_st(2u * (b * Lq + row) + 1u, D); }
  // Sweep 2: dq = scale · Σ P (dP − D) k.
  for (var j0 = 0u; j0 < Lk; j0 = j0 + TK) {
    ${stage}
    if (valid && l > 0.0) {
      let jn = min(TK, Lk - j0);
      for (var jj = 0u; jj < jn; jj = jj + 1u) {
        ${dots}
        let p = select(exp(sc - lse), 0.0, sc == ninf_f());
        let ds = p * (dp - D);
        for (var e = 0u; e < EW; e = e + 1u) { acc[e] = acc[e] + ds * Ks[jj * EW + e]; }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    for (var e = 0u; e < E; e = e + 1u) { st_dq((b * Lq + row) * E + e, ${comp('acc', 'e')} * md_scale()); }
  }
}`,
      groups: [Math.ceil(Lq / ROWS), B],
    });
  }

  // Kernel 2: dk and dv, one invocation per key row, query/dO tiles and row statistics staged.
  // `writes` says which gradients go to `target` (both: dk, then dv from element dvAt on).
  const keyRows = (target: GpuStorage, writes: 'both' | 'dk' | 'dv'): void => {
    if (B * Lk === 0) return;
    const { meta, bindings } = attentionInputs(q, k, v, mask, causal, scale);
    meta.strided('gy', gy).u32('dvAt', writes === 'both' ? B * Lk * E : 0);
    ctx.run({
      name: `attnBwdKV${W}:${E}:${Ev}:${tile}:${writes}`,
      bindings: [...bindings, gyBinding, statsOf('read'), { name: 'dkv', storage: target, dtype, access: 'write' }],
      meta,
      code: () =>
        consts +
        score +
        `const TQ = ${tile}u;
var<workgroup> Qs: array<${T}, ${(tile * E) / W}>;
var<workgroup> Gs: array<${T}, ${(tile * Ev) / W}>;
var<workgroup> Ls: array<f32, ${tile}>;
var<workgroup> Ds: array<f32, ${tile}>;
@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let Lq = md_Lq(); let Lk = md_Lk();
  let b = wid.y;
  let col = wid.x * ROWS + li;
  let valid = col < Lk;
  var kr: array<${T}, EW>;
  var vr: array<${T}, EVW>;
  var dk: array<${T}, EW>;
  var dv: array<${T}, EVW>;
  ${loadRow(W, 'kr', 'k', 'col', 'Lk', 'E')}
  ${loadRow(W, 'vr', 'v', 'col', 'Lk', 'EV')}
  for (var e = 0u; e < EW; e = e + 1u) { dk[e] = ${T}(0.0); }
  for (var e = 0u; e < EVW; e = e + 1u) { dv[e] = ${T}(0.0); }
  for (var i0 = 0u; i0 < Lq; i0 = i0 + TQ) {
    ${stageRows(W, 'Qs', 'q', 'i0', 'TQ', 'Lq', 'E', 'ROWS', ' * md_scale()')}
    ${stageRows(W, 'Gs', 'gy', 'i0', 'TQ', 'Lq', 'EV', 'ROWS')}
    for (var t = li; t < TQ; t = t + ROWS) {
      var lse = pinf_f();
      var D = 0.0;
      if (i0 + t < Lq) { lse = ld_st(2u * (b * Lq + i0 + t)); D = ld_st(2u * (b * Lq + i0 + t) + 1u); }
      Ls[t] = lse;
      Ds[t] = D;
    }
    workgroupBarrier();
    if (valid) {
      let iN = min(TQ, Lq - i0);
      for (var ii = 0u; ii < iN; ii = ii + 1u) {
        var d = ${T}(0.0);
        for (var e = 0u; e < EW; e = e + 1u) { d = d + Qs[ii * EW + e] * kr[e]; }
        let sc = masked(${hsum('d')}, b, i0 + ii, col);
        let p = select(exp(sc - Ls[ii]), 0.0, sc == ninf_f() || Ls[ii] == pinf_f());
        if (p != 0.0) {
          var g = ${T}(0.0);
          for (var e = 0u; e < EVW; e = e + 1u) { g = g + Gs[ii * EVW + e] * vr[e]; dv[e] = dv[e] + p * Gs[ii * EVW + e]; }
          let ds = p * (${hsum('g')} - Ds[ii]);
          for (var e = 0u; e < EW; e = e + 1u) { dk[e] = dk[e] + ds * Qs[ii * EW + e]; }
        }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    ${writes !== 'dv' ? `for (var e = 0u; e < E; e = e + 1u) { st_dkv((b * Lk + col) * E + e, ${comp('dk', 'e')}); }` : ''}
    ${writes !== 'dk' ? `for (var e = 0u; e < EV; e = e + 1u) { st_dkv(md_dvAt() + (b * Lk + col) * EV + e, ${comp('dv', 'e')}); }` : ''}
  }
}`,
      groups: [Math.ceil(Lk / ROWS), B],
    });
  };
  let dk: GpuStorage;
  let dv: GpuStorage;
  const packedBytes = B * Lk * (E + Ev) * gpuItemSize(dtype);
  if (packedBytes <= Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize)) {
    const dkv = ctx.alloc(dtype, B * Lk * (E + Ev));
    keyRows(dkv, 'both');
    const split = (offset: number, n: number) => unary(ctx, 'copy', { storage: dkv, dtype, shape: [n], strides: [1], offset }, dtype);
    dk = split(0, B * Lk * E);
    dv = split(B * Lk * E, B * Lk * Ev);
    ctx.free(dkv);
  } else {
    // dk and dv together would pass the binding limit: one pass for each.
    dk = ctx.alloc(dtype, B * Lk * E);
    keyRows(dk, 'dk');
    dv = ctx.alloc(dtype, B * Lk * Ev);
    keyRows(dv, 'dv');
  }
  ctx.free(stats);
  return [dq, dk, dv];
}
