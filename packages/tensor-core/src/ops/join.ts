import { promoteTypes } from '../dtype.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { contiguousStrides, fmt, normDim, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record } from './dispatch.js';
import { cast } from './elementwise.js';
import { slice, unsqueeze } from './view.js';

/**
 * Concatenates along `dim`; every other dim must match.
 *
 * @example
 * ```ts
 * k.cat([k.zeros([2, 3]), k.ones([1, 3])], 0).shape; // [3, 3]
 * ```
 */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ArgumentError('cat: needs at least one tensor');
  const first = tensors[0];
  const b = backendOf('cat', ...tensors);
  const d = normDim(dim, first.ndim, 'cat');
  const dtype = tensors.map((t) => t.dtype).reduce(promoteTypes);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new ShapeError(`cat: shapes ${tensors.map((x) => fmt(x.shape)).join(', ')} differ outside dim ${d}`);
    }
  }
  const inputs = tensors.map((t) => cast(t, dtype));
  const shape = [...first.shape];
  shape[d] = inputs.reduce((s, t) => s + t.shape[d], 0);
  const out = make(b, b.alloc(dtype, numel(shape)), dtype, shape);
  const strides = contiguousStrides(shape);
  let start = 0;
  for (const t of inputs) {
    b.copyInto({ storage: out._view().storage, dtype, shape: t.shape, strides, offset: start * strides[d] }, t._view());
    start += t.shape[d];
  }
  return record(out, 'cat', inputs, (g) => {
    let s = 0;
    return inputs.map((t) => {
      const piece = slice(g, d, s, s + t.shape[d]);
      s += t.shape[d];
      return piece;
    });
  });
}

/** Stacks equal-shaped tensors along a new dim. @example k.stack([k.zeros([3]), k.ones([3])]).shape; // [2, 3] */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ArgumentError('stack: needs at least one tensor');
  const d = normDim(dim, tensors[0].ndim + 1, 'stack');
  for (const t of tensors) {
    if (fmt(t.shape) !== fmt(tensors[0].shape)) {
      throw new ShapeError(`stack: shapes ${tensors.map((x) => fmt(x.shape)).join(', ')} must all be equal`);
    }
  }
  return cat(
    tensors.map((t) => unsqueeze(t, d)),
    d,
  );
}

/**
 * Pads with a constant, `torch.nn.functional.pad` style: `pad` lists (before, after) pairs
 * starting from the last dim.
 *
 * @example
 * ```ts
 * k.pad(x, [1, 1, 2, 0]); // last dim +1 each side, second-to-last +2 before
 * ```
 */
export function pad(x: Tensor, padding: readonly number[], value = 0): Tensor {
  if (padding.length % 2 !== 0 || padding.length / 2 > x.ndim) {
    throw new ArgumentError(`pad: padding [${padding.join(', ')}] must hold (before, after) pairs for at most ${x.ndim} dims`);
  }
  if (padding.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new ArgumentError(`pad: padding [${padding.join(', ')}] must be non-negative integers`);
  }
  const b = x._backend();
  const shape = [...x.shape];
  const before = new Array<number>(x.ndim).fill(0);
  for (let i = 0; i < padding.length / 2; i++) {
    const d = x.ndim - 1 - i;
    before[d] = padding[2 * i];
    shape[d] += padding[2 * i] + padding[2 * i + 1];
  }
  const out = make(b, b.fill(x.dtype, numel(shape), value), x.dtype, shape);
  const strides = contiguousStrides(shape);
  const offset = before.reduce((s, p, i) => s + p * strides[i], 0);
  b.copyInto({ storage: out._view().storage, dtype: x.dtype, shape: x.shape, strides, offset }, x._view());
  return record(out, 'pad', [x], (g) => [
    before.reduce((t, p, d) => (p || shape[d] !== x.shape[d] ? slice(t, d, p, p + x.shape[d]) : t), g),
  ]);
}
