/**
 * Row kernels: softmax, layerNorm and groupNorm (with optional SiLU). One workgroup per row (a
 * normalised group is one row of `cg × spatial` elements); statistics accumulate in f32 whatever
 * the storage type.
 */
import type { View } from '../../../backend.js';
import { numel } from '../../../shape.js';
import type { Bound, GpuContext } from '../context.js';
import { Meta, grid } from '../meta.js';
import type { GpuStorage } from '../pool.js';

type GV = View<GpuStorage>;

/** Invocations per row. */
export const RW = 128;

/** `fn NAME(v: T, li: u32) -> T`: a tree reduction over the RW invocations (all get the result); `comb` joins `lhs` and `rhs`. */
export function workgroupFold(name: string, type: string, comb: string): string {
  return `
var<workgroup> ${name}_red: array<${type}, ${RW}>;
fn ${name}(v: ${type}, li: u32) -> ${type} {
  ${name}_red[li] = v;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { let lhs = ${name}_red[li]; let rhs = ${name}_red[li + s]; ${name}_red[li] = ${comb}; }
    workgroupBarrier();
  }
  let r = ${name}_red[0];
  workgroupBarrier();
  return r;
}
`;
}

/** Workgroup sum and max of f32 (`wg_sum`, `wg_max`). */
export const WG_REDUCE = workgroupFold('wg_sum', 'f32', 'lhs + rhs') + workgroupFold('wg_max', 'f32', 'max(lhs, rhs)');

/** `fn main` over one workgroup per row (`row`), with `li` and `RW` in scope. */
export function rowMain(body: string): string {
  return `@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= md_rows()) { return; }
  let RW = ${RW}u;
${body}
}`;
}

/** Optional affine operands as read bindings named `w` and `b`, indexed by `idx_w`/`idx_b`. */
export function affine(meta: Meta, weight: GV | null, bias: GV | null): Bound[] {
  const out: Bound[] = [];
  if (weight) {
    meta.strided('w', weight);
    out.push({ name: 'w', storage: weight.storage, dtype: weight.dtype, access: 'read' });
  }
  if (bias) {
    meta.strided('b', bias);
    out.push({ name: 'b', storage: bias.storage, dtype: bias.dtype, access: 'read' });
  }
  return out;
}

/** A row kernel writing an output shaped like x; `meta` already has `rows` and the kernel's scalars. */
function rowKernel(ctx: GpuContext, name: string, x: GV, meta: Meta, extra: Bound[], rows: number, body: string): GpuStorage {
  const n = numel(x.shape);
  const out = ctx.alloc(x.dtype, n);
  if (rows === 0 || n === 0) return out;
  meta.strided('x', x);
  ctx.run({
    name: `row:${name}`,
    bindings: [
      { name: 'x', storage: x.storage, dtype: x.dtype, access: 'read' },
      ...extra,
      { name: 'out', storage: out, dtype: x.dtype, access: 'write' },
    ],
    meta,
    code: () => WG_REDUCE + rowMain(body),
    groups: grid(rows, ctx.limits.maxGroups),
  });
  return out;
}

export function softmax(ctx: GpuContext, x: GV, log: boolean): GpuStorage {
  const D = x.shape.length ? x.shape[x.shape.length - 1] : 1;
  const rows = D === 0 ? 0 : numel(x.shape) / D;
  const meta = new Meta().u32s({ rows, D });
  return rowKernel(
    ctx,
    `softmax:${log}`,
    x,
    meta,
    [],
    rows,
    `
  let D = md_D();
  let base = row * D;
  var m = ninf_f();
  for (var c = li; c < D; c = c + RW) { m = max(m, ld_x(idx_x(base + c))); }
  m = wg_max(m, li);
  var s = 0.0;
  for (var c = li; c < D; c = c + RW) { s = s + exp(ld_x(idx_x(base + c)) - m); }
  s = wg_sum(s, li);
  for (var c = li; c < D; c = c + RW) {
    let v = ld_x(idx_x(base + c));
    st_out(base + c, ${log ? 'v - m - log(s)' : 'exp(v - m) / s'});
  }`,
  );
}

/**
 * WGSL computing `mean` and `rstd` of the row's `S` elements at `base` (two passes over the
 * row, so the variance never cancels catastrophically).
 */
export const ROW_STATS = `
  var s = 0.0;
  for (var i = li; i < S; i = i + RW) { s = s + ld_x(idx_x(base + i)); }
  let mean = wg_sum(s, li) / f32(S);
  var q = 0.0;
  for (var i = li; i < S; i = i + RW) { let d = ld_x(idx_x(base + i)) - mean; q = q + d * d; }
  let rstd = 1.0 / sqrt(wg_sum(q, li) / f32(S) + md_eps());`;

export function layerNorm(ctx: GpuContext, x: GV, weight: GV | null, bias: GV | null, normSize: number, eps: number): GpuStorage {
  const rows = normSize === 0 ? 0 : numel(x.shape) / normSize;
  const meta = new Meta().u32('rows', rows).u32('S', normSize).f32('eps', eps);
  const extra = affine(meta, weight, bias);
  return rowKernel(
    ctx,
    `layerNorm:${!!weight}${!!bias}`,
    x,
    meta,
    extra,
    rows,
    `
  let S = md_S();
  let base = row * S;
  ${ROW_STATS}
  for (var i = li; i < S; i = i + RW) {
    var y = (ld_x(idx_x(base + i)) - mean) * rstd;
    ${weight ? 'y = y * ld_w(idx_w(i));' : ''}
    ${bias ? 'y = y + ld_b(idx_b(i));' : ''}
    st_out(base + i, y);
  }`,
  );
}

export function groupNorm(
  ctx: GpuContext,
  x: GV,
  groups: number,
  weight: GV | null,
  bias: GV | null,
  eps: number,
  silu: boolean,
): GpuStorage {
  const [N, C] = x.shape;
  const spatial = numel(x.shape.slice(2));
  const cg = C / groups;
  const meta = new Meta().u32s({ rows: N * groups, S: cg * spatial, spatial, cg, groups }).f32('eps', eps);
  const extra = affine(meta, weight, bias);
  return rowKernel(
    ctx,
    `groupNorm:${!!weight}${!!bias}${silu}`,
    x,
    meta,
    extra,
    N * groups,
    `
  let S = md_S();
  let spatial = md_spatial();
  let g = row % md_groups();
  let base = row * S;
  ${ROW_STATS}
  for (var i = li; i < S; i = i + RW) {
    let c = g * md_cg() + i / spatial;
    var y = (ld_x(idx_x(base + i)) - mean) * rstd;
    ${weight ? 'y = y * ld_w(idx_w(c));' : ''}
    ${bias ? 'y = y + ld_b(idx_b(c));' : ''}
    ${silu ? 'y = y / (1.0 + exp(-y));' : ''}
    st_out(base + i, y);
  }`,
  );
}
