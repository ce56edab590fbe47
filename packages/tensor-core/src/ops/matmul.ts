import type { View } from '../backend.js';
import { promoteTypes } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { broadcastShapes, contiguousStrides, fmt, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record } from './dispatch.js';
import { add, cast } from './elementwise.js';
import { expandView, reshape, squeeze, sumTo, transpose, unsqueeze } from './view.js';

/** Folds the batch dims of a [...batch, R, C] view into one, copying only if strides forbid it. */
function as3d(x: Tensor, batch: readonly number[], rows: number, cols: number): { view: View; temp?: Tensor } {
  const v = expandView(x, [...batch, rows, cols]);
  const n = batch.length;
  const bs = v.strides.slice(0, n);
  const B = numel(batch);
  let stride: number | null = n === 0 ? 0 : bs[n - 1];
  for (let i = 0; i < n - 1 && stride !== null; i++) {
    if (batch[i] !== 1 && bs[i] !== bs[i + 1] * batch[i + 1]) stride = null;
  }
  if (stride === null && bs.every((s) => s === 0)) stride = 0;
  if (stride !== null) {
    return { view: { ...v, shape: [B, rows, cols], strides: [stride, v.strides[n], v.strides[n + 1]] } };
  }
  const b = x._backend();
  const shape = [B, rows, cols];
  const temp = make(b, b.unary('copy', v, x.dtype), x.dtype, shape);
  return { view: { ...temp._view(), shape, strides: contiguousStrides(shape) }, temp };
}

/**
 * Matrix product with `torch.matmul`'s rules: 1-D operands are promoted and squeezed, batch
 * dims broadcast. Transposed operands are read through their strides, without copies.
 *
 * @example
 * ```ts
 * k.randn([8, 2, 3]).matmul(k.randn([3, 4])).shape; // [8, 2, 4]
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(`matmul: both operands need at least 1 dim, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  }
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, -1)), -1);
  const backend = backendOf('matmul', a, b);
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  if (K !== K2) {
    throw new ShapeError(`matmul: shapes ${fmt(a.shape)} and ${fmt(b.shape)} do not fit (inner dims ${K} and ${K2} differ)`);
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul');
  const dtype = promoteTypes(a.dtype, b.dtype);
  const ca = cast(a, dtype);
  const cb = cast(b, dtype);
  const A = as3d(ca, batch, M, K);
  const B = as3d(cb, batch, K, N);
  const y = make(backend, backend.matmul(A.view, B.view), dtype, [...batch, M, N]);
  A.temp?.dispose();
  B.temp?.dispose();
  return record(y, 'matmul', [ca, cb], (g) => [
    ca.requiresGrad ? sumTo(matmul(g, transpose(cb, -1, -2)), ca.shape) : null,
    cb.requiresGrad ? sumTo(matmul(transpose(ca, -1, -2), g), cb.shape) : null,
  ]);
}

/**
 * `x @ weight.T + bias`, with PyTorch's weight layout [out, in].
 *
 * @example
 * ```ts
 * k.linear(k.randn([4, 3]), k.randn([2, 3]), k.zeros([2])).shape; // [4, 2]
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new ShapeError(`linear: weight must be 2-D [out, in], got ${fmt(weight.shape)}`);
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(
      `linear: input ${fmt(x.shape)} has ${x.shape[x.ndim - 1]} features, weight ${fmt(weight.shape)} expects ${weight.shape[1]}`,
    );
  }
  const lead = x.shape.slice(0, -1);
  const y = matmul(reshape(x, [-1, weight.shape[1]]), transpose(weight, 0, 1));
  const out = bias ? add(y, bias) : y;
  return reshape(out, [...lead, weight.shape[0]]);
}
