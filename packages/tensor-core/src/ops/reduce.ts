import type { ReduceOp } from '../backend.js';
import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import { ArgumentError } from '../errors.js';
import { noGrad, tidy } from '../runtime.js';
import { normDims, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { accumulationType, inAccumulationType } from './accumulate.js';
import { make, record } from './dispatch.js';
import { cast, div, eq, mul, sqrt, sub } from './elementwise.js';
import { expand, reshape } from './view.js';

/** One dim, several, or all (undefined). @example x.sum(); x.sum(1); x.mean([2, 3], true); // all dims, one, or several */
export type Dims = number | readonly number[] | undefined;

function keptShape(x: Tensor, axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
}

function reduce(op: ReduceOp, x: Tensor, dim: Dims, keepdim: boolean): { y: Tensor; axes: number[]; input: Tensor } {
  const input = op === 'sum' && !isFloat(x.dtype) ? cast(x, 'int32') : x;
  const axes = normDims(dim, x.ndim, op);
  if (op !== 'sum' && axes.some((a) => x.shape[a] === 0)) {
    throw new ArgumentError(`${op}: cannot reduce over an empty dim of shape [${x.shape.join(', ')}]`);
  }
  const y = op === 'sum' ? accumulate(input, axes, keepdim, input.dtype) : raw(op, input, axes, keepdim);
  return { y, axes, input };
}

function raw(op: ReduceOp, x: Tensor, axes: readonly number[], keepdim: boolean): Tensor {
  const b = x._backend();
  return make(b, b.reduce(op, x._view(), axes), x.dtype, keptShape(x, axes, keepdim));
}

/**
 * Untracked sum over `axes` computed in the accumulation type (f32 for half inputs, see
 * `accumulate.ts`), divided by `divisor` and cast to `outDtype`: one rounding, after the division.
 */
function accumulate(x: Tensor, axes: readonly number[], keepdim: boolean, outDtype: DType, divisor = 1): Tensor {
  const acc = accumulationType(x.dtype);
  if (acc === x.dtype && divisor === 1) return raw('sum', x, axes, keepdim);
  return noGrad(() =>
    tidy(() => {
      const s = raw('sum', cast(x, acc), axes, keepdim);
      return cast(divisor === 1 ? s : div(s, divisor), outDtype);
    }),
  );
}

/** Gradient of a reduction, broadcast back over the reduced axes. */
function spread(g: Tensor, x: Tensor, axes: readonly number[]): Tensor {
  return expand(reshape(g, keptShape(x, axes, true)), x.shape);
}

/**
 * Sum over `dim` (all dims when omitted). Integer and bool tensors sum to int32.
 *
 * @example
 * ```ts
 * k.ones([2, 3]).sum(1); // [3, 3]
 * ```
 */
export function sum(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const { y, axes, input } = reduce('sum', x, dim, keepdim);
  return record(y, 'sum', [input], (g) => [spread(g, input, axes)]);
}

/**
 * Mean over `dim` (all dims when omitted). Half inputs accumulate in f32 and round once, so the
 * mean of 70,000 float16 values is exact to f16 precision; integer inputs give float32.
 *
 * @example
 * ```ts
 * k.ones([70000], { dtype: 'float16' }).mean(); // 1 (float16)
 * ```
 */
export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const input = isFloat(x.dtype) ? x : cast(x, 'float32');
  const axes = normDims(dim, x.ndim, 'mean');
  const count = numel(axes.map((a) => x.shape[a]));
  const y = accumulate(input, axes, keepdim, input.dtype, count);
  return record(y, 'mean', [input], (g) => [spread(div(g, count), input, axes)]);
}

function extremum(op: 'max' | 'min', x: Tensor, dim: Dims, keepdim: boolean): Tensor {
  const { y, axes, input } = reduce(op, x, dim, keepdim);
  return record(y, op, [input], (g) => {
    // Ties share the gradient evenly, as torch.amax/amin do.
    const mask = cast(eq(input, spread(y, input, axes)), g.dtype);
    const count = sum(mask, axes, true);
    return [div(mul(mask, spread(g, input, axes)), count)];
  });
}

/** Largest element over `dim` (all when absent), like `torch.amax`. @example k.max(k.tensor([[1, 5], [3, 2]]), 1); // [5, 3] */
export const max = (x: Tensor, dim?: Dims, keepdim = false): Tensor => extremum('max', x, dim, keepdim);
/** Smallest element over `dim` (all when absent), like `torch.amin`. @example k.min(k.tensor([[1, 5], [3, 2]]), 0); // [1, 2] */
export const min = (x: Tensor, dim?: Dims, keepdim = false): Tensor => extremum('min', x, dim, keepdim);

/**
 * Variance with Bessel's correction by default (`correction: 1`), as `torch.var`. Half inputs are
 * computed in f32 and the result rounded once.
 *
 * @example
 * ```ts
 * k.tensor([1, 2, 3, 4]).var(); // 1.6667
 * ```
 */
export function variance(x: Tensor, dim?: Dims, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
  const correction = options.correction ?? 1;
  const axes = normDims(dim, x.ndim, 'var');
  const n = numel(axes.map((a) => x.shape[a]));
  return inAccumulationType(x, (xw) => {
    const centered = sub(xw, mean(xw, axes, true));
    return div(sum(mul(centered, centered), axes, options.keepdim ?? false), Math.max(n - correction, 0));
  });
}

/**
 * The 2-norm of all elements (`torch.linalg.vector_norm`), computed in f32 for half inputs so
 * that squares past 65504 (any element above 256) do not overflow, as gradient clipping needs.
 *
 * @example
 * ```ts
 * k.tensor([3, 4]).norm(); // 5
 * ```
 */
export function norm(x: Tensor): Tensor {
  return inAccumulationType(x, (xw) => sqrt(sum(mul(xw, xw))));
}
