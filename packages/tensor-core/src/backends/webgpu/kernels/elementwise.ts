/**
 * One invocation per output element: fill, unary and binary ops, where, and strided copies. Each
 * input is loaded through strides coalesced jointly with the output's, so a broadcast or
 * transposed operand costs no copy.
 */
import type { BinaryOp, UnaryOp, View } from '../../../backend.js';
import type { DType } from '../../../dtype.js';
import { contiguousStrides, numel } from '../../../shape.js';
import type { Bound, GpuContext } from '../context.js';
import { WG } from '../context.js';
import { Meta, coalesce } from '../meta.js';
import type { GpuStorage } from '../pool.js';
import { MATH, linearMain } from '../wgsl.js';

type GV = View<GpuStorage>;

/** f32 expressions of `x` (unary) or `a`, `b` (binary). */
const UNARY_F: Record<UnaryOp, string> = {
  copy: 'x',
  neg: '-x',
  abs: 'abs(x)',
  sign: 'select(select(select(nan_f(), 0.0, x == 0.0), -1.0, x < 0.0), 1.0, x > 0.0)',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  reciprocal: '1.0 / x',
  square: 'x * x',
  sin: 'sincos_f(x).x',
  cos: 'sincos_f(x).y',
  tanh: 'tanh_f(x)',
  sigmoid: '1.0 / (1.0 + exp(-x))',
  relu: 'select(0.0, x, x > 0.0)',
  silu: 'x / (1.0 + exp(-x))',
  gelu: '0.5 * x * (1.0 + erf_f(x * 0.7071067811865476))',
  geluTanh: '0.5 * x * (1.0 + tanh_f(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
  erf: 'erf_f(x)',
  floor: 'floor(x)',
  logicalNot: 'select(0.0, 1.0, x == 0.0)',
};
/** Exact i32 versions where integer inputs give integer outputs. */
const UNARY_I: Partial<Record<UnaryOp, string>> = {
  copy: 'x',
  neg: '-x',
  abs: 'abs(x)',
  sign: 'sign(x)',
  square: 'x * x',
  logicalNot: 'select(0, 1, x == 0)',
  relu: 'max(x, 0)',
  floor: 'x',
};
const BINARY_F: Record<BinaryOp, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  pow: 'pow_f(a, b)',
  maximum: 'select(max(a, b), nan_f(), isnan_f(a) || isnan_f(b))',
  minimum: 'select(min(a, b), nan_f(), isnan_f(a) || isnan_f(b))',
  eq: 'select(0.0, 1.0, a == b)',
  ne: 'select(0.0, 1.0, a != b)',
  lt: 'select(0.0, 1.0, a < b)',
  le: 'select(0.0, 1.0, a <= b)',
  gt: 'select(0.0, 1.0, a > b)',
  ge: 'select(0.0, 1.0, a >= b)',
};
const BINARY_I: Partial<Record<BinaryOp, string>> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  maximum: 'max(a, b)',
  minimum: 'min(a, b)',
  eq: 'select(0, 1, a == b)',
  ne: 'select(0, 1, a != b)',
  lt: 'select(0, 1, a < b)',
  le: 'select(0, 1, a <= b)',
  gt: 'select(0, 1, a > b)',
  ge: 'select(0, 1, a >= b)',
};

export const isIntish = (d: DType): boolean => d === 'int32' || d === 'bool';

interface Elementwise {
  tag: string;
  inputs: { name: string; view: GV }[];
  out: GV;
  /** The value stored, over the loaded inputs (f32, or i32 when `int`). */
  expr: string;
  int: boolean;
  /** Scalars the expression reads as `md_NAME()`. */
  scalars?: (m: Meta) => void;
}

/** Stores `expr` at every element of `out` (a fresh storage or a strided window of one). */
function elementwise(ctx: GpuContext, e: Elementwise): void {
  const n = numel(e.out.shape);
  if (n === 0) return;
  const views = [...e.inputs.map((i) => i.view), e.out];
  const names = [...e.inputs.map((i) => i.name), 'out'];
  const c = coalesce(
    e.out.shape,
    views.map((v) => v.strides),
  );
  const meta = new Meta().u32('n', n);
  views.forEach((v, i) => meta.view(names[i], v.offset, c.shape, c.strides[i]));
  e.scalars?.(meta);
  const bindings: Bound[] = e.inputs.map((i) => ({ name: i.name, storage: i.view.storage, dtype: i.view.dtype, access: 'read' }));
  bindings.push({ name: 'out', storage: e.out.storage, dtype: e.out.dtype, access: 'write' });
  const p = e.int ? 'ldi_' : 'ld_';
  const loads = e.inputs.map((i) => `  let ${i.name} = ${p}${i.name}(idx_${i.name}(gid));`).join('\n');
  ctx.run({
    name: `ew:${e.tag}:${e.int ? 'i' : 'f'}`,
    bindings,
    meta,
    code: () =>
      MATH + linearMain(WG, `  if (gid >= md_n()) { return; }\n${loads}\n  ${e.int ? 'sti_' : 'st_'}out(idx_out(gid), ${e.expr});`),
    groups: ctx.linear(n),
  });
}

/** A fresh contiguous output view over `shape`. */
function fresh(ctx: GpuContext, dtype: DType, shape: readonly number[]): GV {
  return { storage: ctx.alloc(dtype, numel(shape)), dtype, shape, strides: contiguousStrides(shape), offset: 0 };
}

export function fill(ctx: GpuContext, dtype: DType, size: number, value: number): GpuStorage {
  const out = fresh(ctx, dtype, [size]);
  const int = isIntish(dtype);
  const v = int ? (dtype === 'bool' ? (value !== 0 ? 1 : 0) : Math.trunc(value)) : value;
  elementwise(ctx, {
    tag: 'fill',
    inputs: [],
    out,
    expr: 'md_value()',
    int,
    scalars: (m) => (int ? m.i32('value', v) : m.f32('value', v)),
  });
  return out.storage;
}

export function unary(ctx: GpuContext, op: UnaryOp, x: GV, outDtype: DType): GpuStorage {
  const int = isIntish(x.dtype) && isIntish(outDtype) && UNARY_I[op] !== undefined;
  const out = fresh(ctx, outDtype, x.shape);
  elementwise(ctx, { tag: `u.${op}`, inputs: [{ name: 'x', view: x }], out, expr: int ? UNARY_I[op]! : UNARY_F[op], int });
  return out.storage;
}

export function binary(ctx: GpuContext, op: BinaryOp, a: GV, b: GV, outDtype: DType): GpuStorage {
  const int = isIntish(a.dtype) && isIntish(b.dtype) && isIntish(outDtype) && BINARY_I[op] !== undefined;
  const out = fresh(ctx, outDtype, a.shape);
  const inputs = [
    { name: 'a', view: a },
    { name: 'b', view: b },
  ];
  elementwise(ctx, { tag: `b.${op}`, inputs, out, expr: int ? BINARY_I[op]! : BINARY_F[op], int });
  return out.storage;
}

export function where(ctx: GpuContext, cond: GV, a: GV, b: GV, outDtype: DType): GpuStorage {
  const int = isIntish(a.dtype) && isIntish(b.dtype) && isIntish(outDtype);
  const out = fresh(ctx, outDtype, a.shape);
  const inputs = [
    { name: 'c', view: cond },
    { name: 'a', view: a },
    { name: 'b', view: b },
  ];
  elementwise(ctx, { tag: 'where', inputs, out, expr: int ? 'select(b, a, c != 0)' : 'select(b, a, c != 0.0)', int });
  return out.storage;
}

/** Writes `src` into the strided window `dst`, through a temporary when both share a storage. */
export function copyInto(ctx: GpuContext, dst: GV, src: GV): void {
  let s = src;
  let temp: GpuStorage | null = null;
  if (src.storage === dst.storage) {
    temp = unary(ctx, 'copy', src, src.dtype);
    s = { storage: temp, dtype: src.dtype, shape: src.shape, strides: contiguousStrides(src.shape), offset: 0 };
  }
  const int = isIntish(s.dtype) && isIntish(dst.dtype);
  elementwise(ctx, { tag: 'copyInto', inputs: [{ name: 'x', view: s }], out: dst, expr: 'x', int });
  if (temp) ctx.free(temp);
}
