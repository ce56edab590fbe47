import type { BinaryOp, UnaryOp } from '../backend.js';
import type { DType } from '../dtype.js';
import { assertDType, isFloat, promoteTypes, promoteWithScalar } from '../dtype.js';
import { ArgumentError } from '../errors.js';
import { broadcastShapes, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record, scalarTensor } from './dispatch.js';
import type { Scalar } from './dispatch.js';
import { expandView, sumTo } from './view.js';

// Casting -------------------------------------------------------------------------------------

/** `x` as `dtype`; differentiable between float types. Returns `x` itself when nothing changes. @example const h = x.to('float16'); // same as k.cast(x, 'float16') */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  assertDType(dtype, 'cast: dtype');
  const b = x._backend();
  const y = make(b, b.unary('copy', x._view(), dtype), dtype, x.shape);
  if (isFloat(dtype)) record(y, 'cast', [x], (g) => [cast(g, x.dtype)]);
  return y;
}

/** A contiguous copy with its own storage; gradients flow through. @example const copy = k.clone(x); // own storage; x.dispose() leaves it intact */
export function clone(x: Tensor): Tensor {
  const b = x._backend();
  const y = make(b, b.unary('copy', x._view(), x.dtype), x.dtype, x.shape);
  return record(y, 'clone', [x], (g) => [g]);
}

// Unary ---------------------------------------------------------------------------------------

type UnaryGrad = (g: Tensor, x: Tensor, y: Tensor) => Tensor | null;

function unary(op: UnaryOp, x: Tensor, grad: UnaryGrad | null, floatOnly = true): Tensor {
  const input = floatOnly && !isFloat(x.dtype) ? cast(x, 'float32') : x;
  const b = input._backend();
  const dtype = op === 'logicalNot' ? 'bool' : input.dtype;
  const y = make(b, b.unary(op, input._view(), dtype), dtype, input.shape);
  if (grad) record(y, op, [input], (g) => [grad(g, input, y)]);
  return y;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** −x, elementwise. @example k.neg(k.tensor([1, -2])); // [-1, 2] */
export const neg = (x: Tensor): Tensor => unary('neg', x, (g) => neg(g), false);
/** |x|, elementwise. @example k.abs(k.tensor([-3, 2])); // [3, 2] */
export const abs = (x: Tensor): Tensor => unary('abs', x, (g, x) => mul(g, sign(x)), false);
/** −1, 0 or 1 by the sign of each element (no gradient). @example k.sign(k.tensor([-3, 0, 2])); // [-1, 0, 1] */
export const sign = (x: Tensor): Tensor => unary('sign', x, null, false);
/** The largest integer ≤ x, elementwise (no gradient). @example k.floor(k.tensor([1.5, -1.5])); // [1, -2] */
export const floor = (x: Tensor): Tensor => unary('floor', x, null, false);
/** Boolean negation; the result is bool. @example k.logicalNot(k.tensor([true, false])); // [false, true] */
export const logicalNot = (x: Tensor): Tensor => unary('logicalNot', x, null, false);
/** eˣ, elementwise. @example k.exp(k.zeros([2])); // [1, 1] */
export const exp = (x: Tensor): Tensor => unary('exp', x, (g, _x, y) => mul(g, y));
/** Natural logarithm, elementwise. @example k.log(k.tensor([1, Math.E])); // [0, 1] */
export const log = (x: Tensor): Tensor => unary('log', x, (g, x) => div(g, x));
/** √x, elementwise. @example k.sqrt(k.tensor([4, 9])); // [2, 3] */
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, (g, _x, y) => div(mul(g, 0.5), y));
/** 1/√x, elementwise. @example k.rsqrt(k.tensor([4, 16])); // [0.5, 0.25] */
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x, (g, _x, y) => mul(g, mul(pow(y, 3), -0.5)));
/** 1/x, elementwise. @example k.reciprocal(k.tensor([2, 4])); // [0.5, 0.25] */
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x, (g, _x, y) => neg(mul(g, square(y))));
/** x², elementwise. @example k.square(k.tensor([3, -2])); // [9, 4] */
export const square = (x: Tensor): Tensor => unary('square', x, (g, x) => mul(g, mul(x, 2)), false);
/** sin x, elementwise (radians). @example k.sin(k.tensor([0, Math.PI / 2])); // [0, 1] */
export const sin = (x: Tensor): Tensor => unary('sin', x, (g, x) => mul(g, cos(x)));
/** cos x, elementwise (radians). @example k.cos(k.tensor([0, Math.PI])); // [1, -1] */
export const cos = (x: Tensor): Tensor => unary('cos', x, (g, x) => neg(mul(g, sin(x))));
/** tanh x, elementwise. @example k.tanh(k.tensor([0, 100])); // [0, 1] */
export const tanh = (x: Tensor): Tensor => unary('tanh', x, (g, _x, y) => mul(g, sub(1, square(y))));
/** 1 / (1 + e⁻ˣ), elementwise. @example k.sigmoid(k.zeros([2])); // [0.5, 0.5] */
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, (g, _x, y) => mul(g, mul(y, sub(1, y))));
/** max(x, 0), elementwise. @example k.relu(k.tensor([-1, 2])); // [0, 2] */
export const relu = (x: Tensor): Tensor => unary('relu', x, (g, x) => mul(g, cast(gt(x, 0), g.dtype)), false);
/** The error function, elementwise. @example k.erf(k.tensor([0, 10])); // [0, 1] */
export const erf = (x: Tensor): Tensor => unary('erf', x, (g, x) => mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI))));

/** x · sigmoid(x). @example k.silu(k.tensor([0, 1])); // [0, 0.7311] */
export const silu = (x: Tensor): Tensor =>
  unary('silu', x, (g, x) => {
    const s = sigmoid(x);
    return mul(g, mul(s, add(mul(x, sub(1, s)), 1)));
  });

/**
 * GELU, exact (erf) or with the tanh approximation.
 *
 * @example
 * ```ts
 * k.gelu(x, { approximate: 'tanh' });
 * ```
 */
export function gelu(x: Tensor, options: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  if (options.approximate === 'tanh') {
    return unary('geluTanh', x, (g, x) => {
      const x2 = square(x);
      const t = tanh(mul(add(x, mul(mul(x2, x), 0.044715)), SQRT_2_OVER_PI));
      const left = mul(add(t, 1), 0.5);
      const right = mul(mul(mul(x, sub(1, square(t))), 0.5 * SQRT_2_OVER_PI), add(mul(x2, 3 * 0.044715), 1));
      return mul(g, add(left, right));
    });
  }
  if (options.approximate !== undefined && options.approximate !== 'none') {
    throw new ArgumentError(`gelu: approximate must be 'none' or 'tanh', got '${options.approximate}'`);
  }
  return unary('gelu', x, (g, x) => {
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(square(x), -0.5)), INV_SQRT_2PI);
    return mul(g, add(cdf, mul(x, pdf)));
  });
}

/** CLIP's `x · sigmoid(1.702 x)`. @example const h = k.quickGelu(k.linear(x, w, b)); // CLIP's MLP activation */
export function quickGelu(x: Tensor): Tensor {
  return mul(x, sigmoid(mul(x, 1.702)));
}

// Binary --------------------------------------------------------------------------------------

const COMPARE = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);

type BinaryGrad = (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null];

function binary(op: BinaryOp, a: Tensor, other: Tensor | Scalar, grad: BinaryGrad | null): Tensor {
  let dtype: DType;
  let bT: Tensor;
  const backend = a._backend();
  if (typeof other === 'number' || typeof other === 'boolean') {
    dtype = promoteWithScalar(a.dtype, other);
    if ((op === 'div' || op === 'pow') && !isFloat(dtype) && (op === 'div' || (other as number) < 0)) dtype = 'float32';
    bT = scalarTensor(backend, Number(other), dtype);
  } else {
    backendOf(op, a, other);
    dtype = promoteTypes(a.dtype, other.dtype);
    if (op === 'div' && !isFloat(dtype)) dtype = 'float32';
    bT = other;
  }
  if (!COMPARE.has(op) && dtype === 'bool' && op !== 'maximum' && op !== 'minimum') dtype = 'int32';
  const ca = cast(a, dtype);
  const cb = cast(bT, dtype);
  const shape = broadcastShapes(ca.shape, cb.shape, op);
  const outDtype = COMPARE.has(op) ? 'bool' : dtype;
  const y = make(backend, backend.binary(op, expandView(ca, shape), expandView(cb, shape), outDtype), outDtype, shape);
  if (grad) {
    record(y, op, [ca, cb], (g) => {
      const [ga, gb] = grad(g, ca, cb, y);
      return [ga && sumTo(ga, ca.shape), gb && sumTo(gb, cb.shape)];
    });
  }
  return y;
}

/** Turns a scalar first operand into a tensor shaped like nothing (0-d) on `like`'s backend. */
function lift(value: Tensor | Scalar, like: Tensor): Tensor {
  if (typeof value === 'number' || typeof value === 'boolean') {
    return scalarTensor(like._backend(), Number(value), promoteWithScalar(like.dtype, value));
  }
  return value;
}

/** `a + alpha · b`, broadcasting. Either operand may be a number. @example k.add(k.tensor([1, 2]), 10); // [11, 12]; x.add(y) is the same */
export function add(a: Tensor | Scalar, b: Tensor | Scalar, alpha = 1): Tensor {
  if (typeof a !== 'object') return add(lift(a, b as Tensor), b, alpha);
  const other = alpha === 1 ? b : typeof b === 'object' ? mul(b, alpha) : Number(b) * alpha;
  return binary('add', a, other, (g) => [g, g]);
}

/** `a − alpha · b`, broadcasting. Either operand may be a number. @example k.sub(k.tensor([5, 5]), k.tensor([1, 2])); // [4, 3] */
export function sub(a: Tensor | Scalar, b: Tensor | Scalar, alpha = 1): Tensor {
  if (typeof a !== 'object') return sub(lift(a, b as Tensor), b, alpha);
  const other = alpha === 1 ? b : typeof b === 'object' ? mul(b, alpha) : Number(b) * alpha;
  return binary('sub', a, other, (g) => [g, neg(g)]);
}

/** `a · b`, elementwise, broadcasting. Either operand may be a number. @example k.mul(k.ones([2, 3]), k.tensor([1, 2, 3])); // broadcast: every row [1, 2, 3] */
export function mul(a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  if (typeof a !== 'object') return mul(b as Tensor, a);
  return binary('mul', a, b, (g, a, b) => [a.requiresGrad ? mul(g, b) : null, b.requiresGrad ? mul(g, a) : null]);
}

/** `a / b`, elementwise, broadcasting. Either operand may be a number. @example k.div(k.tensor([1, 2]), 4); // [0.25, 0.5] */
export function div(a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  if (typeof a !== 'object') return div(lift(a, b as Tensor), b);
  return binary('div', a, b, (g, a, b, y) => [a.requiresGrad ? div(g, b) : null, b.requiresGrad ? neg(div(mul(g, y), b)) : null]);
}

/** `aᵇ`, elementwise, broadcasting. @example k.pow(k.tensor([2, 3]), 2); // [4, 9] */
export function pow(a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  if (typeof a !== 'object') return pow(lift(a, b as Tensor), b);
  return binary('pow', a, b, (g, a, b, y) => [
    a.requiresGrad ? mul(g, mul(b, pow(a, sub(b, 1)))) : null,
    b.requiresGrad ? mul(g, mul(y, log(a))) : null,
  ]);
}

/** Elementwise max; where both are equal the gradient is split evenly, as in PyTorch. @example k.maximum(k.tensor([1, 5]), 3); // [3, 5] */
export function maximum(a: Tensor, b: Tensor | Scalar): Tensor {
  return binary('maximum', a, b, (g, a, b) => {
    const wa = add(cast(gt(a, b), g.dtype), mul(cast(eq(a, b), g.dtype), 0.5));
    return [mul(g, wa), mul(g, sub(1, wa))];
  });
}

/** The smaller of `a` and `b`, elementwise, broadcasting. @example k.minimum(k.tensor([1, 5]), 3); // [1, 3] */
export function minimum(a: Tensor, b: Tensor | Scalar): Tensor {
  return binary('minimum', a, b, (g, a, b) => {
    const wa = add(cast(lt(a, b), g.dtype), mul(cast(eq(a, b), g.dtype), 0.5));
    return [mul(g, wa), mul(g, sub(1, wa))];
  });
}

/** `x` limited to [min, max] (either bound optional); the gradient is zero where clamped. @example k.clamp(k.tensor([-2, 0.5, 2]), -1, 1); // [-1, 0.5, 1] */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  let y = x;
  if (min !== undefined) y = where(lt(y, min), min, y);
  if (max !== undefined) y = where(gt(y, max), max, y);
  return y;
}

/** a == b, elementwise, broadcast; the result is bool. @example k.eq(k.tensor([1, 2]), 2); // [false, true] */
export const eq = (a: Tensor, b: Tensor | Scalar): Tensor => binary('eq', a, b, null);
/** a != b, elementwise, broadcast; the result is bool. @example k.ne(k.tensor([1, 2]), 2); // [true, false] */
export const ne = (a: Tensor, b: Tensor | Scalar): Tensor => binary('ne', a, b, null);
/** a < b, elementwise, broadcast; the result is bool. @example k.lt(k.tensor([1, 2]), 2); // [true, false] */
export const lt = (a: Tensor, b: Tensor | Scalar): Tensor => binary('lt', a, b, null);
/** a ≤ b, elementwise, broadcast; the result is bool. @example k.le(k.tensor([1, 3]), 2); // [true, false] */
export const le = (a: Tensor, b: Tensor | Scalar): Tensor => binary('le', a, b, null);
/** a > b, elementwise, broadcast; the result is bool. @example k.gt(k.tensor([1, 3]), 2); // [false, true] */
export const gt = (a: Tensor, b: Tensor | Scalar): Tensor => binary('gt', a, b, null);
/** a ≥ b, elementwise, broadcast; the result is bool. @example k.ge(k.tensor([2, 1]), 2); // [true, false] */
export const ge = (a: Tensor, b: Tensor | Scalar): Tensor => binary('ge', a, b, null);

/**
 * `cond ? a : b` elementwise, broadcasting all three.
 *
 * @example
 * ```ts
 * const y = k.where(x.gt(0), x, 0); // relu
 * ```
 */
export function where(cond: Tensor, a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  const backend = cond._backend();
  const ta = lift(a, typeof b === 'object' ? b : typeof a === 'object' ? a : scalarTensor(backend, 0, 'float32'));
  const tb = lift(b, ta);
  backendOf('where', cond, ta, tb);
  const dtype = promoteTypes(ta.dtype, tb.dtype);
  const ca = cast(ta, dtype);
  const cb = cast(tb, dtype);
  const c = cast(cond, 'bool');
  const shape = broadcastShapes(broadcastShapes(c.shape, ca.shape, 'where'), cb.shape, 'where');
  const y = make(backend, backend.where(expandView(c, shape), expandView(ca, shape), expandView(cb, shape), dtype), dtype, shape);
  return record(y, 'where', [ca, cb], (g) => {
    const zero = scalarTensor(backend, 0, g.dtype);
    return [ca.requiresGrad ? sumTo(where(c, g, zero), ca.shape) : null, cb.requiresGrad ? sumTo(where(c, zero, g), cb.shape) : null];
  });
}

/** A tensor filled with `value`, shaped and typed like `like` (helper for gradient rules). @example k.fullLike(scores, -Infinity); */
export function fullLike(like: Tensor, value: number, dtype: DType = like.dtype): Tensor {
  const b = like._backend();
  return make(b, b.fill(dtype, numel(like.shape), value), dtype, like.shape);
}
