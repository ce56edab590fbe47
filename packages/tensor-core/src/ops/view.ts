import type { View } from '../backend.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { contiguousStrides, fmt, normDim, numel, sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { make, record, viewOf } from './dispatch.js';
import { sum } from './reduce.js';

/** The backend view of `x` broadcast to `shape` (0 strides on the broadcast dims; no copy). */
export function expandView(x: Tensor, shape: readonly number[]): View {
  const v = x._view();
  if (sameShape(x.shape, shape)) return v;
  return { ...v, shape, strides: broadcastStrides(x, shape, 'expand') };
}

function broadcastStrides(x: Tensor, shape: readonly number[], op: string): number[] {
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new ShapeError(`${op}: cannot expand shape ${fmt(x.shape)} to fewer dims ${fmt(shape)}`);
  return shape.map((d, i) => {
    if (i < lead) return 0;
    const src = x.shape[i - lead];
    if (src === d) return x.strides[i - lead];
    if (src === 1) return 0;
    throw new ShapeError(`${op}: cannot expand shape ${fmt(x.shape)} to ${fmt(shape)}`);
  });
}

/** Sums a broadcast gradient back down to `shape` (the adjoint of expand). @example const gb = k.sumTo(gradOfBroadcast, bias.shape); // undo a broadcast in a gradient rule */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  const s = dims.length ? sum(g, dims, true) : g;
  return reshape(s, shape);
}

/** Throws unless `v` is an integer (a NaN, fraction or Infinity index names `what`). */
function assertInt(op: string, what: string, v: number): void {
  if (!Number.isSafeInteger(v)) throw new ArgumentError(`${op}: ${what} must be an integer, got ${v}`);
}

/**
 * Broadcasts `x` to `shape` as a view (`torch.Tensor.expand`): size-1 dims stretch, new leading
 * dims are added, and -1 keeps an existing dim.
 *
 * @example
 * ```ts
 * k.zeros([3, 1]).expand([2, 3, 4]).shape; // [2, 3, 4]
 * ```
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new ShapeError(`expand: cannot expand shape ${fmt(x.shape)} to fewer dims ${fmt(shape)}`);
  shape.forEach((d, i) => {
    if (d === -1 && i < lead)
      throw new ShapeError(`expand: size -1 at dim ${i} of ${fmt(shape)} is a new leading dim, which has no size to keep`);
    if (d !== -1 && (!Number.isSafeInteger(d) || d < 0)) {
      throw new ShapeError(`expand: size ${d} at dim ${i} of ${fmt(shape)} must be a non-negative integer (or -1 to keep the dim)`);
    }
  });
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead] : d));
  if (sameShape(target, x.shape)) return x;
  const y = viewOf(x, target, broadcastStrides(x, target, 'expand'), x.offset);
  return record(y, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

function inferShape(x: Tensor, shape: readonly number[]): number[] {
  const n = x.numel();
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg !== -1) {
    const rest = numel(out.filter((_, i) => i !== neg));
    if (rest === 0 || n % rest !== 0) throw new ShapeError(`reshape: cannot reshape ${fmt(x.shape)} into ${fmt(shape)}`);
    out[neg] = n / rest;
  }
  if (numel(out) !== n || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`reshape: cannot reshape ${fmt(x.shape)} (${n} elements) into ${fmt(shape)}`);
  }
  return out;
}

/** Strides that let `x` be viewed as `shape` without a copy, or null (ATen's computeStride). */
function viewStrides(x: Tensor, shape: readonly number[]): number[] | null {
  if (x.isContiguous()) return contiguousStrides(shape);
  const oldShape = x.shape;
  const oldStrides = x.strides;
  const out = new Array<number>(shape.length).fill(1);
  let viewD = shape.length - 1;
  let chunkBase = oldStrides[oldStrides.length - 1];
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = oldShape.length - 1; d >= 0; d--) {
    tensorNumel *= oldShape[d];
    if (d === 0 || (oldShape[d - 1] !== 1 && oldStrides[d - 1] !== tensorNumel * chunkBase)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || shape[viewD] === 1)) {
        out[viewD] = viewNumel * chunkBase;
        viewNumel *= shape[viewD];
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkBase = oldStrides[d - 1];
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  return viewD === -1 ? out : null;
}

/** The same elements in a new shape (one dim may be −1); a view when strides allow, else a copy (ATen's rule). @example k.reshape(k.arange(6), [2, -1]).shape; // [2, 3] */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(x, shape);
  if (sameShape(target, x.shape)) return x;
  const strides = viewStrides(x, target);
  const src = strides ? x : contiguous(x);
  const y = viewOf(src, target, strides ?? contiguousStrides(target), src.offset);
  if (src !== x) src.dispose();
  return record(y, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

/** Dims `startDim`…`endDim` merged into one (`torch.flatten`). @example k.flatten(k.zeros([2, 3, 4]), 1).shape; // [2, 12] */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim(startDim, x.ndim, 'flatten');
  const e = normDim(endDim, x.ndim, 'flatten');
  const shape = [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

/** A view with the dims reordered (`torch.permute`). @example k.permute(k.zeros([2, 3, 4]), [2, 0, 1]).shape; // [4, 2, 3] */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const d = dims.map((v) => normDim(v, x.ndim, 'permute'));
  if (d.length !== x.ndim || new Set(d).size !== d.length) {
    throw new ShapeError(`permute: dims [${dims.join(', ')}] are not a permutation of ${x.ndim} dims (shape ${fmt(x.shape)})`);
  }
  const y = viewOf(
    x,
    d.map((i) => x.shape[i]),
    d.map((i) => x.strides[i]),
    x.offset,
  );
  const inverse = new Array<number>(d.length);
  d.forEach((v, i) => (inverse[v] = i));
  return record(y, 'permute', [x], (g) => [permute(g, inverse)]);
}

/** A view with two dims swapped. @example k.transpose(k.zeros([2, 3]), 0, 1).shape; // [3, 2] */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = normDim(dim0, x.ndim, 'transpose');
  const b = normDim(dim1, x.ndim, 'transpose');
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/** A view without size-1 dims (only `dim` when given). @example k.squeeze(k.zeros([1, 3, 1])).shape; // [3] */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const d = normDim(dim, x.ndim, 'squeeze');
  if (x.shape[d] !== 1) return x;
  return reshape(
    x,
    x.shape.filter((_, i) => i !== d),
  );
}

/** A view with a size-1 dim inserted at `dim`. @example k.unsqueeze(k.zeros([3]), 0).shape; // [1, 3] */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim(dim, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

/**
 * `x[..., start:end:step, ...]` along `dim`, as a view. Negative indices count from the end and
 * out-of-range ones clamp, as in Python slicing; `end` omitted means to the end.
 *
 * @example
 * ```ts
 * k.arange(10).slice(0, 2, -2, 3); // [2, 5]
 * ```
 */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  const d = normDim(dim, x.ndim, 'slice');
  const n = x.shape[d];
  assertInt('slice', 'start', start);
  if (end !== undefined) assertInt('slice', 'end', end);
  if (!Number.isInteger(step) || step < 1) throw new ArgumentError(`slice: step must be a positive integer, got ${step}`);
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = Math.max(clampIdx(end ?? n), s);
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape];
  shape[d] = len;
  const strides = [...x.strides];
  strides[d] = x.strides[d] * step;
  const y = viewOf(x, shape, strides, x.offset + s * x.strides[d]);
  return record(y, 'slice', [x], (g) => [sliceBackward(g, x.shape, d, s, step)]);
}

/** Zeros shaped like the sliced input, with `g` written into the slice (slice's adjoint). */
function sliceBackward(g: Tensor, shape: readonly number[], dim: number, start: number, step: number): Tensor {
  const b = g._backend();
  const out = make(b, b.fill(g.dtype, numel(shape), 0), g.dtype, shape);
  const strides = contiguousStrides(shape);
  const dst = {
    storage: out._view().storage,
    dtype: g.dtype,
    shape: g.shape,
    strides: strides.map((s, i) => (i === dim ? s * step : s)),
    offset: start * strides[dim],
  };
  b.copyInto(dst, g._view());
  return record(out, 'sliceBackward', [g], (gg) => [slice(gg, dim, start, start + g.shape[dim] * step, step)]);
}

/**
 * `x[index]` along `dim`, dropping that dim (negative indices count from the end).
 *
 * @example
 * ```ts
 * k.zeros([3, 4]).select(1, -1).shape; // [3]
 * ```
 */
export function select(x: Tensor, dim: number, index: number): Tensor {
  const d = normDim(dim, x.ndim, 'select');
  const n = x.shape[d];
  assertInt('select', 'index', index);
  const i = index < 0 ? index + n : index;
  if (i < 0 || i >= n) throw new ArgumentError(`select: index ${index} is out of range for dim ${d} of size ${n}`);
  return squeeze(slice(x, d, i, i + 1), d);
}

/** `x` itself when contiguous, else a contiguous copy. @example const t = k.contiguous(x.transpose(0, 1)); // row-major copy (x itself when already contiguous) */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous()) return x;
  const b = x._backend();
  const y = make(b, b.unary('copy', x._view(), x.dtype), x.dtype, x.shape);
  return record(y, 'contiguous', [x], (g) => [g]);
}

/**
 * `length` elements of `dim` from `start` (negative counts from the end), as a view; unlike
 * `slice` it refuses a window that does not fit, as `torch.narrow` does.
 *
 * @example
 * ```ts
 * k.arange(10).narrow(0, 2, 3); // [2, 3, 4]
 * ```
 */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim(dim, x.ndim, 'narrow');
  const n = x.shape[d];
  assertInt('narrow', 'start', start);
  assertInt('narrow', 'length', length);
  const s = start < 0 ? start + n : start;
  if (s < 0 || s > n) throw new ArgumentError(`narrow: start ${start} is out of range for dim ${d} of size ${n}`);
  if (length < 0 || s + length > n) throw new ArgumentError(`narrow: length ${length} from ${s} does not fit dim ${d} of size ${n}`);
  return slice(x, d, s, s + length);
}

/**
 * Splits into pieces of `splitSize` along `dim` (the last may be smaller), or into pieces of
 * the listed sizes, which must sum to the dim (`torch.split`). The pieces are views.
 *
 * @example
 * ```ts
 * k.zeros([6, 2]).split([1, 2, 3]).map((t) => t.shape[0]); // [1, 2, 3]
 * ```
 */
export function split(x: Tensor, splitSize: number | readonly number[], dim = 0): Tensor[] {
  const d = normDim(dim, x.ndim, 'split');
  const n = x.shape[d];
  let sizes: number[];
  if (typeof splitSize === 'number') {
    if (!Number.isInteger(splitSize) || splitSize < 1) throw new ArgumentError(`split: size must be a positive integer, got ${splitSize}`);
    sizes = [];
    for (let s = 0; s < n; s += splitSize) sizes.push(Math.min(splitSize, n - s));
  } else {
    sizes = [...splitSize];
    sizes.forEach((v, i) => {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new ArgumentError(`split: size ${v} at position ${i} of [${sizes.join(', ')}] must be a non-negative integer`);
    });
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== n) throw new ShapeError(`split: sizes [${sizes.join(', ')}] sum to ${total}, but dim ${d} of ${fmt(x.shape)} is ${n}`);
  }
  const out: Tensor[] = [];
  let start = 0;
  for (const s of sizes) {
    out.push(slice(x, d, start, start + s));
    start += s;
  }
  return out;
}

/**
 * Splits into `chunks` pieces of `ceil(size / chunks)` along `dim` (fewer when it does not divide), as `torch.chunk`.
 *
 * @example
 * ```ts
 * const [uncond, cond] = noisePred.chunk(2); // classifier-free guidance halves
 * ```
 */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const d = normDim(dim, x.ndim, 'chunk');
  if (!Number.isSafeInteger(chunks) || chunks < 1) throw new ArgumentError(`chunk: chunks must be a positive integer, got ${chunks}`);
  if (x.shape[d] === 0) return [x];
  return split(x, Math.ceil(x.shape[d] / chunks), d);
}
