/**
 * Fused gradients of layerNorm and groupNorm(+SiLU): one workgroup per normalised row recomputes
 * the row's mean and 1/std from x (nothing is saved by the forward), then writes dx; the weight
 * and bias gradients come from f32 partial sums reduced in a fixed order, so results do not
 * depend on scheduling. Everything accumulates in f32 whatever the storage type.
 *
 * With xhat = (x − mean)·rstd, z = xhat·w + b, y = z or silu(z) and gz = dL/dz:
 *   dx = rstd · (gz·w − mean(gz·w) − xhat · mean(gz·w·xhat)),  dw = Σ gz·xhat,  db = Σ gz.
 */
import type { View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import { numel } from '../../../shape.js';
import type { Bound, GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta, grid } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { linearMain } from '../wgsl.js';
import { fill, unary } from './elementwise.js';
import { ROW_STATS, WG_REDUCE, affine, rowMain, workgroupFold } from './norm.js';
import { reduce } from './reduce.js';

type GV = View<GpuStorage>;
type Grads = [GpuStorage, GpuStorage | null, GpuStorage | null];

/** Rows per partial sum in layerNorm's weight/bias gradient (one invocation per column and chunk). */
const ROWS_PER_PART = 64;

/** Workgroup sums of f32 (`wg_sum`, for the row statistics) and vec2 (`wg_sum2`: two sums, one set of barriers). */
const ROW_SUMS = WG_REDUCE + workgroupFold('wg_sum2', 'vec2<f32>', 'lhs + rhs');

/** gz (dL/dz) of element `e` in channel with weight `wc` and bias `bc`, undoing the SiLU when fused. */
const gradZ = (silu: boolean) => `
fn grad_z(e: u32, xh: f32, wc: f32, bc: f32) -> f32 {
  var g = ld_gy(idx_gy(e));
  ${silu ? 'let z = xh * wc + bc; let s = 1.0 / (1.0 + exp(-z)); g = g * s * (1.0 + z * (1.0 - s));' : ''}
  return g;
}
`;

/**
 * Sums `parts` f32 partials laid out [parts, n] over the parts (element `start` on) into `n`
 * values of `dtype`.
 */
function sumParts(ctx: GpuContext, buf: GpuStorage, start: number, parts: number, n: number, dtype: DType): GpuStorage {
  const sum = reduce(ctx, 'sum', { storage: buf, dtype: 'float32', shape: [parts, n], strides: [n, 1], offset: start }, [0]);
  if (dtype === 'float32') return sum;
  const cast = unary(ctx, 'copy', { storage: sum, dtype: 'float32', shape: [n], strides: [1], offset: 0 }, dtype);
  ctx.free(sum);
  return cast;
}

function readBinding(name: string, v: GV): Bound {
  return { name, storage: v.storage, dtype: v.dtype, access: 'read' };
}

/** A dx row kernel's bindings: x, the affine operands, gy, dx (`out`) and its f32 side output. */
function dxBindings(x: GV, affineOperands: Bound[], gy: GV, dx: GpuStorage, side: { name: string; storage: GpuStorage }): Bound[] {
  return [
    readBinding('x', x),
    ...affineOperands,
    readBinding('gy', gy),
    { name: 'out', storage: dx, dtype: x.dtype, access: 'write' },
    { ...side, dtype: 'float32', access: 'write' },
  ];
}

export function layerNormBackward(
  ctx: GpuContext,
  x: GV,
  weight: GV | null,
  bias: GV | null,
  normSize: number,
  eps: number,
  gy: GV,
): Grads {
  const S = normSize;
  const n = numel(x.shape);
  const rows = S === 0 ? 0 : n / S;
  const dx = ctx.alloc(x.dtype, n);
  const needAffine = weight !== null || bias !== null;
  // Per row mean and rstd, for the weight/bias pass.
  const stats = ctx.alloc('float32', needAffine ? 2 * Math.max(rows, 1) : 1);
  if (rows > 0) {
    const meta = new Meta().u32('rows', rows).u32('S', S).f32('eps', eps).strided('x', x).strided('gy', gy);
    const extra = affine(meta, weight, null);
    ctx.run({
      name: `lnBwd:dx:${!!weight}:${needAffine}`,
      bindings: dxBindings(x, extra, gy, dx, { name: 'stats', storage: stats }),
      meta,
      code: () =>
        ROW_SUMS +
        rowMain(`
  let S = md_S();
  let base = row * S;
  ${ROW_STATS}
  var a = vec2<f32>(0.0);
  for (var i = li; i < S; i = i + RW) {
    let xh = (ld_x(idx_x(base + i)) - mean) * rstd;
    let gx = ld_gy(idx_gy(base + i))${weight ? ' * ld_w(idx_w(i))' : ''};
    a = a + vec2<f32>(gx, gx * xh);
  }
  a = wg_sum2(a, li) / f32(S);
  for (var i = li; i < S; i = i + RW) {
    let xh = (ld_x(idx_x(base + i)) - mean) * rstd;
    let gx = ld_gy(idx_gy(base + i))${weight ? ' * ld_w(idx_w(i))' : ''};
    st_out(base + i, rstd * (gx - a.x - xh * a.y));
  }
  ${needAffine ? 'if (li == 0u) { st_stats(2u * row, mean); st_stats(2u * row + 1u, rstd); }' : ''}`),
      groups: grid(rows, ctx.limits.maxGroups),
    });
  }
  if (!needAffine) {
    ctx.free(stats);
    return [dx, null, null];
  }
  // Column sums of gy·xhat and gy over chunks of rows, then a fixed-order sum of the chunks.
  const P = Math.max(1, Math.ceil(rows / ROWS_PER_PART));
  const parts = ctx.alloc('float32', 2 * P * S);
  const meta = new Meta().u32s({ rows, S, P, chunk: ROWS_PER_PART }).strided('x', x).strided('gy', gy);
  ctx.run({
    name: 'lnBwd:affine',
    bindings: [
      readBinding('x', x),
      readBinding('gy', gy),
      { name: 'st', storage: stats, dtype: 'float32', access: 'read' },
      { name: 'parts', storage: parts, dtype: 'float32', access: 'write' },
    ],
    meta,
    code: () =>
      linearMain(
        WG,
        `  let S = md_S();
  if (gid >= md_P() * S) { return; }
  let p = gid / S; let i = gid % S;
  var a = vec2<f32>(0.0);
  let r1 = min(md_rows(), (p + 1u) * md_chunk());
  for (var r = p * md_chunk(); r < r1; r = r + 1u) {
    let xh = (ld_x(idx_x(r * S + i)) - ld_st(2u * r)) * ld_st(2u * r + 1u);
    let g = ld_gy(idx_gy(r * S + i));
    a = a + vec2<f32>(g * xh, g);
  }
  st_parts(gid, a.x);
  st_parts(md_P() * S + gid, a.y);`,
      ),
    groups: ctx.linear(P * S),
  });
  ctx.free(stats);
  const dw = weight ? sumParts(ctx, parts, 0, P, S, weight.dtype) : null;
  const db = bias ? sumParts(ctx, parts, P * S, P, S, bias.dtype) : null;
  ctx.free(parts);
  return [dx, dw, db];
}

export function groupNormBackward(
  ctx: GpuContext,
  x: GV,
  groups: number,
  weight: GV | null,
  bias: GV | null,
  eps: number,
  silu: boolean,
  gy: GV,
): Grads {
  const [N, C] = x.shape;
  const spatial = numel(x.shape.slice(2));
  const cg = C / groups;
  const n = numel(x.shape);
  const rows = N * groups;
  const dx = ctx.alloc(x.dtype, n);
  // Per (n, c): Σ over the channel's pixels of gz·xhat and of gz, laid out [2, N, C] (zero when
  // there are no pixels).
  const parts = n > 0 ? ctx.alloc('float32', 2 * N * C) : fill(ctx, 'float32', 2 * N * C, 0);
  if (n > 0) {
    const meta = new Meta()
      .u32s({ rows, S: cg * spatial, spatial, cg, groups, C, NC: N * C })
      .f32('eps', eps)
      .strided('x', x)
      .strided('gy', gy);
    const extra = affine(meta, weight, bias);
    const wc = weight ? 'ld_w(idx_w(c))' : '1.0';
    const bc = bias ? 'ld_b(idx_b(c))' : '0.0';
    ctx.run({
      name: `gnBwd:${!!weight}${!!bias}${silu}`,
      bindings: dxBindings(x, extra, gy, dx, { name: 'parts', storage: parts }),
      meta,
      code: () =>
        ROW_SUMS +
        gradZ(silu) +
        rowMain(`
  let S = md_S();
  let spatial = md_spatial();
  let g = row % md_groups();
  let nb = row / md_groups();
  let base = row * S;
  ${ROW_STATS}
  // Channel by channel: the weight/bias partials, and from them the row sums dx needs.
  var sg = 0.0;
  var sgx = 0.0;
  for (var cc = 0u; cc < md_cg(); cc = cc + 1u) {
    let c = g * md_cg() + cc;
    let wc = ${wc};
    let bc = ${bc};
    var a = vec2<f32>(0.0);
    for (var i = li; i < spatial; i = i + RW) {
      let e = base + cc * spatial + i;
      let xh = (ld_x(idx_x(e)) - mean) * rstd;
      let gz = grad_z(e, xh, wc, bc);
      a = a + vec2<f32>(gz * xh, gz);
    }
    a = wg_sum2(a, li);
    if (li == 0u) { st_parts(nb * md_C() + c, a.x); st_parts(md_NC() + nb * md_C() + c, a.y); }
    sgx = sgx + wc * a.x;
    sg = sg + wc * a.y;
  }
  sg = sg / f32(S);
  sgx = sgx / f32(S);
  for (var i = li; i < S; i = i + RW) {
    let c = g * md_cg() + i / spatial;
    let wc = ${wc};
    let bc = ${bc};
    let xh = (ld_x(idx_x(base + i)) - mean) * rstd;
    st_out(base + i, rstd * (grad_z(base + i, xh, wc, bc) * wc - sg - xh * sgx));
  }`),
      groups: grid(rows, ctx.limits.maxGroups),
    });
  }
  const dw = weight ? sumParts(ctx, parts, 0, N, C, weight.dtype) : null;
  const db = bias ? sumParts(ctx, parts, N * C, N, C, bias.dtype) : null;
  ctx.free(parts);
  return [dx, dw, db];
}
