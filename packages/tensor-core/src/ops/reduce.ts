import type { ReduceOp } from '../backend.js';
import { isFloat } from '../dtype.js';
import { ArgumentError } from '../errors.js';
import { normDims, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { make, record } from './dispatch.js';
import { cast, div, eq, mul, sub } from './elementwise.js';
import { expand, reshape } from './view.js';

/** One dim, several, or all (undefined). */
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
  const b = input._backend();
  const y = make(b, b.reduce(op, input._view(), axes), input.dtype, keptShape(x, axes, keepdim));
  return { y, axes, input };
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

export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const input = isFloat(x.dtype) ? x : cast(x, 'float32');
  const axes = normDims(dim, x.ndim, 'mean');
  const count = numel(axes.map((a) => x.shape[a]));
  return div(sum(input, axes, keepdim), count);
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

export const max = (x: Tensor, dim?: Dims, keepdim = false): Tensor => extremum('max', x, dim, keepdim);
export const min = (x: Tensor, dim?: Dims, keepdim = false): Tensor => extremum('min', x, dim, keepdim);

/** Variance with Bessel's correction by default (`correction: 1`), as `torch.var`. */
export function variance(x: Tensor, dim?: Dims, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
  const correction = options.correction ?? 1;
  const axes = normDims(dim, x.ndim, 'var');
  const n = numel(axes.map((a) => x.shape[a]));
  const centered = sub(x, mean(x, axes, true));
  return div(sum(mul(centered, centered), axes, options.keepdim ?? false), Math.max(n - correction, 0));
}
