/**
 * sum / max / min over any set of axes of a strided view. Floating inputs accumulate in f32
 * whatever their storage type (as PyTorch does for float16/bfloat16), so a long f16 sum neither
 * stalls nor overflows before the final store; max and min propagate NaN.
 */
import type { ReduceOp, View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import { numel } from '../../../shape.js';
import type { GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta, coalesce, grid } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { linearMain } from '../wgsl.js';
import { unary } from './elementwise.js';

type GV = View<GpuStorage>;

/** Invocations per workgroup when a workgroup shares one output. */
const RW = 128;

/**
 * Reduces over `axes` into a storage of `outDtype` (the input's, or f32/i32 for partials). With
 * `parts` > 1 each output gets `parts` partial results over consecutive chunks of the reduced
 * elements, laid out [nOut, parts].
 */
function reducePass(ctx: GpuContext, op: ReduceOp, x: GV, axes: readonly number[], outDtype: DType, parts: number): GpuStorage {
  const keptShape: number[] = [];
  const keptStrides: number[] = [];
  const redShape: number[] = [];
  const redStrides: number[] = [];
  x.shape.forEach((d, i) => {
    if (axes.includes(i)) {
      redShape.push(d);
      redStrides.push(x.strides[i]);
    } else {
      keptShape.push(d);
      keptStrides.push(x.strides[i]);
    }
  });
  const nOut = numel(keptShape);
  const R = numel(redShape);
  const out = ctx.alloc(outDtype, nOut * parts);
  if (nOut === 0) return out;
  const int = x.dtype === 'int32' || x.dtype === 'bool';
  const perThread = parts === 1 && (R <= 64 || nOut >= 4096);
  const k = coalesce(keptShape, [keptStrides]);
  const r = coalesce(redShape, [redStrides]);
  const meta = new Meta()
    .u32s({ nOut, R, parts, chunk: Math.ceil(R / parts) })
    .view('k', x.offset, k.shape, k.strides[0])
    .view('r', 0, r.shape, r.strides[0]);
  const T = int ? 'i32' : 'f32';
  const init =
    op === 'sum' ? `${T}(0)` : int ? (op === 'max' ? 'i32(-2147483647 - 1)' : 'i32(2147483647)') : op === 'max' ? 'ninf_f()' : 'pinf_f()';
  const comb = op === 'sum' ? 'a + b' : op === 'max' ? 'max(a, b)' : 'min(a, b)';
  const nanFix = !int && op !== 'sum';
  const ld = int ? 'ldi_x' : 'ld_x';
  const st = int ? 'sti_out' : 'st_out';
  const combFn = `fn comb(a: ${T}, b: ${T}) -> ${T} { return ${comb}; }\n`;
  const bindings = [
    { name: 'x', storage: x.storage, dtype: x.dtype, access: 'read' as const },
    { name: 'out', storage: out, dtype: outDtype, access: 'write' as const },
  ];
  if (perThread) {
    // One invocation per output: best when outputs are many or rows short.
    ctx.run({
      name: `reduce:${op}:t`,
      bindings,
      meta,
      code: () =>
        combFn +
        linearMain(
          WG,
          `  if (gid >= md_nOut()) { return; }
  let base = idx_k(gid);
  var acc = ${init};
  var nan = false;
  for (var j = 0u; j < md_R(); j = j + 1u) {
    let v = ${ld}(base + idx_r(j));
    ${nanFix ? 'nan = nan || isnan_f(v);' : ''}
    acc = comb(acc, v);
  }
  ${nanFix ? 'if (nan) { acc = nan_f(); }' : ''}
  ${st}(gid, acc);`,
        ),
      groups: ctx.linear(nOut),
    });
    return out;
  }
  // One workgroup per (output, part): strided loads, then a tree reduction in workgroup memory.
  ctx.run({
    name: `reduce:${op}:w`,
    bindings,
    meta,
    code: () =>
      combFn +
      `var<workgroup> red: array<${T}, ${RW}>;
var<workgroup> rnan: array<u32, ${RW}>;
@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let id = wid.x + wid.y * nwg.x;
  let P = md_parts();
  let o = id / P;
  if (o >= md_nOut()) { return; }
  let jb = (id % P) * md_chunk();
  let je = min(md_R(), jb + md_chunk());
  let base = idx_k(o);
  var acc = ${init};
  var nan = 0u;
  for (var j = jb + li; j < je; j = j + ${RW}u) {
    let v = ${ld}(base + idx_r(j));
    ${nanFix ? 'if (isnan_f(v)) { nan = 1u; }' : ''}
    acc = comb(acc, v);
  }
  red[li] = acc;
  rnan[li] = nan;
  workgroupBarrier();
  for (var s = ${RW / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = comb(red[li], red[li + s]); rnan[li] = rnan[li] | rnan[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    var r = red[0];
    ${nanFix ? 'if (rnan[0] != 0u) { r = nan_f(); }' : ''}
    ${st}(id, r);
  }
}`,
    groups: grid(nOut * parts, ctx.limits.maxGroups),
  });
  return out;
}

export function reduce(ctx: GpuContext, op: ReduceOp, x: GV, axes: readonly number[]): GpuStorage {
  const R = axes.reduce((n, a) => n * x.shape[a], 1);
  const nOut = numel(x.shape) / Math.max(R, 1);
  const int = x.dtype === 'int32' || x.dtype === 'bool';
  // Long reductions into few outputs: a first pass over P chunks per output (many workgroups),
  // then a second reduction over the [nOut, P] partials (kept in f32/i32, cast at the end).
  const wide = R > 64 && nOut < 4096;
  const P = wide && nOut < 256 && R > 16384 ? Math.min(Math.ceil(R / 8192), 1024, Math.floor(ctx.limits.maxGroups / nOut)) : 1;
  if (P <= 1 || R === 0) return reducePass(ctx, op, x, axes, x.dtype, 1);
  const partDtype: DType = int ? 'int32' : 'float32';
  const partial = reducePass(ctx, op, x, axes, partDtype, P);
  const res = reducePass(ctx, op, { storage: partial, dtype: partDtype, shape: [nOut, P], strides: [P, 1], offset: 0 }, [1], partDtype, 1);
  ctx.free(partial);
  if (partDtype === x.dtype) return res;
  const cast = unary(ctx, 'copy', { storage: res, dtype: partDtype, shape: [nOut], strides: [1], offset: 0 }, x.dtype);
  ctx.free(res);
  return cast;
}
