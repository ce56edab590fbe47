/**
 * Shape and layout arithmetic shared by the op layer and every backend: element counts, strides,
 * broadcasting, dims, and convolution geometry. Backends import these rather than restating them.
 */
import type { Conv2dParams } from './backend.js';
import { ArgumentError, ShapeError } from './errors.js';

/** A tensor shape: sizes per dim. @example const shape: k.Shape = [2, 3]; k.numel(shape); // 6 */
export type Shape = readonly number[];

/** The number of elements of a shape. @example k.numel([2, 3, 4]); // 24 */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a shape, in elements. @example k.contiguousStrides([2, 3, 4]); // [12, 4, 1] */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== s) return false;
    s *= shape[i];
  }
  return true;
}

export function fmt(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function assertShape(shape: Shape, what = 'shape'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${what} ${fmt(shape)} must hold non-negative integers`);
  }
}

/** Normalises a possibly negative dim against `rank` (PyTorch's wrap-around). */
export function normDim(dim: number, rank: number, op = 'op'): number {
  const d = dim < 0 ? dim + rank : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(rank, 1)) {
    throw new ArgumentError(`${op}: dim ${dim} is out of range for a tensor of rank ${rank}`);
  }
  return d;
}

export function normDims(dims: number | readonly number[] | undefined, rank: number, op = 'op'): number[] {
  if (dims === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  const out = [...new Set(list.map((d) => normDim(d, rank, op)))];
  return out.sort((a, b) => a - b);
}

/** NumPy broadcasting of two shapes, with an error naming both when they do not fit. @example k.broadcastShapes([2, 1, 4], [3, 1]); // [2, 3, 4] */
export function broadcastShapes(a: Shape, b: Shape, op = 'op'): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

// Convolution geometry -----------------------------------------------------------------------

/** Output extent of a convolution along one axis, as PyTorch computes it. */
export function convOutputSize(size: number, kernel: number, stride: number, padding: number, dilation: number): number {
  return Math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Output extent of a transposed convolution along one axis (`outputPadding` adds to one side). */
export function convTransposeOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padding: number,
  dilation: number,
  outputPadding: number,
): number {
  return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + outputPadding + 1;
}

/** [N, O, Ho, Wo] of conv2d over x [N, C, H, W] with weight [O, C/groups, kh, kw]. */
export function conv2dOutputShape(xShape: Shape, wShape: Shape, p: Conv2dParams): [number, number, number, number] {
  return [
    xShape[0],
    wShape[0],
    convOutputSize(xShape[2], wShape[2], p.stride[0], p.padding[0], p.dilation[0]),
    convOutputSize(xShape[3], wShape[3], p.stride[1], p.padding[1], p.dilation[1]),
  ];
}

/** The sizes of one conv2d: x [N, C, H, W], w [O, C/groups, kh, kw], y [N, O, Ho, Wo]. */
export interface ConvDims {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  kh: number;
  kw: number;
  Ho: number;
  Wo: number;
}

/**
 * The sizes of a conv2d from its three shapes. Gradient kernels pass the shape of `gy` they were
 * given rather than recomputing it: with `outputPadding` the two can differ.
 */
export function convDims(xShape: Shape, wShape: Shape, yShape: Shape): ConvDims {
  const [N, C, H, W] = xShape;
  const [O, , kh, kw] = wShape;
  return { N, C, H, W, O, kh, kw, Ho: yShape[2], Wo: yShape[3] };
}
