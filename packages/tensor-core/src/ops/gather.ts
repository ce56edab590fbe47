import { ArgumentError, ShapeError } from '../errors.js';
import { noGrad, tidy } from '../runtime.js';
import { contiguousStrides, fmt, normDim, numel } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { arange } from './creation.js';
import { backendOf, make, record } from './dispatch.js';
import { add, clone, ge, lt, mul, sub, where } from './elementwise.js';
import { contiguous, permute, reshape } from './view.js';

// Indexing ops built on the two row primitives every backend has (`gatherRows`, `scatterAddRows`),
// so wasm and webgpu need no kernel of their own.

/**
 * Runs a `gatherRows` call; an id outside the table (which the cpu and wasm kernels report as a
 * `RangeError`) becomes an `ArgumentError` naming the op and the index argument.
 */
export function checkedRows<T>(op: string, problem: string, fn: () => T, withKernelMessage = true): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new ArgumentError(`${op}: ${problem}${withKernelMessage ? ` (${err.message})` : ''}`, { cause: err });
  }
}

/** Rows `ids` (int32, 1-D) of `table` ([R, C]) → [N, C]; differentiable in `table`. */
function takeRows(op: string, problem: string, table: Tensor, ids: Tensor, withKernelMessage = true): Tensor {
  const b = backendOf(op, table, ids);
  const [R, C] = table.shape;
  const rows = checkedRows(op, problem, () => b.gatherRows(table._view(), ids._view()), withKernelMessage);
  const y = make(b, rows, table.dtype, [ids.shape[0], C]);
  return record(y, op, [table], (g) => [addRows(op, problem, g, ids, R)]);
}

/** `src` ([N, C]) rows summed into `rows` zero rows at `ids` (takeRows' adjoint); differentiable in `src`. */
function addRows(op: string, problem: string, src: Tensor, ids: Tensor, rows: number): Tensor {
  const b = backendOf(op, src, ids);
  const y = make(b, b.scatterAddRows(src._view(), ids._view(), rows), src.dtype, [rows, src.shape[1]]);
  return record(y, `${op}Backward`, [src], (g) => [takeRows(op, problem, g, ids)]);
}

function assertIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'int32') throw new ArgumentError(`${op}: index must be int32, got ${index.dtype}`);
}

/**
 * The entries of `x` along `dim` at the positions in `index` (a 1-D or 0-d int32 tensor), as
 * `torch.index_select`: the result has `x`'s shape with `dim` resized to `index.numel()`. Ids
 * outside `[0, x.size(dim))` raise an `ArgumentError` on the cpu and wasm backends.
 *
 * @example
 * ```ts
 * // alphas_cumprod[timesteps]
 * const a = k.indexSelect(alphasCumprod, 0, timesteps); // [batch]
 * k.indexSelect(k.tensor([[1, 2], [3, 4]]), 1, k.tensor([1, 1, 0], { dtype: 'int32' })); // [[2, 2, 1], [4, 4, 3]]
 * ```
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  assertIndex('indexSelect', index);
  if (index.ndim > 1) throw new ShapeError(`indexSelect: index must be 1-D or 0-d, got shape ${fmt(index.shape)}`);
  backendOf('indexSelect', x, index);
  const rank = Math.max(x.ndim, 1);
  const d = normDim(dim, rank, 'indexSelect');
  const shape = x.ndim === 0 ? [1] : x.shape;
  // Move `dim` to the front so that each selected slice is one contiguous row.
  const order = [d, ...shape.map((_, i) => i).filter((i) => i !== d)];
  const inverse = order.map((_, i) => order.indexOf(i));
  const rest = order.slice(1).map((i) => shape[i]);
  const ids = reshape(index, [-1]);
  const table = reshape(permute(reshape(x, shape), order), [shape[d], numel(rest)]);
  const rows = takeRows('indexSelect', `index holds an id outside [0, ${shape[d]}) for dim ${d} of input ${fmt(x.shape)}`, table, ids);
  const out = permute(reshape(rows, [ids.shape[0], ...rest]), inverse);
  return x.ndim === 0 ? reshape(out, []) : out;
}

/**
 * `out[i][j][k] = x[index[i][j][k]][j][k]` for `dim = 0` (and so on for other dims), as
 * `torch.gather`: `index` is int32 with `x`'s rank, no larger than `x` outside `dim`, and the
 * result has `index`'s shape. Ids outside `[0, x.size(dim))` raise an `ArgumentError` on the cpu
 * and wasm backends. The gradient scatters back into `x`, summing repeated ids.
 *
 * @example
 * ```ts
 * const x = k.tensor([[1, 2], [3, 4]]);
 * k.gather(x, 1, k.tensor([[0, 0], [1, 0]], { dtype: 'int32' })); // [[1, 1], [4, 3]]
 * ```
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  assertIndex('gather', index);
  backendOf('gather', x, index);
  const rank = Math.max(x.ndim, 1);
  const d = normDim(dim, rank, 'gather');
  const xs = x.ndim === 0 ? [1] : x.shape;
  const is = index.ndim === 0 ? [1] : index.shape;
  if (is.length !== xs.length || is.some((s, i) => i !== d && s > xs[i])) {
    throw new ShapeError(`gather: index ${fmt(index.shape)} must have the rank of input ${fmt(x.shape)} and be no larger outside dim ${d}`);
  }
  if (numel(xs) > 2 ** 31 - 1) throw new ShapeError(`gather: input ${fmt(x.shape)} has more elements than int32 offsets reach`);
  const strides = contiguousStrides(xs);
  const size = xs[d];
  // Flat offsets into contiguous x: index along `d`, the index's own position elsewhere; -1
  // (refused by the row kernels) where an id is outside [0, size).
  const flat = noGrad(() =>
    tidy(() => {
      const ids = reshape(index, is);
      let off = mul(ids, strides[d]);
      is.forEach((s, i) => {
        if (i === d || s === 1) return;
        const pos = reshape(
          mul(arange(0, s, 1, { device: x.device, dtype: 'int32' }), strides[i]),
          is.map((_, j) => (j === i ? s : 1)),
        );
        off = add(off, pos);
      });
      const inside = where(ge(ids, 0), lt(ids, size), false);
      return reshape(where(inside, off, -1), [-1]);
    }),
  );
  const table = reshape(contiguous(x), [numel(xs), 1]);
  const rows = takeRows('gather', `index holds an id outside [0, ${size}) for dim ${d} of input ${fmt(x.shape)}`, table, flat, false);
  return reshape(rows, index.shape);
}

/**
 * Reverses the order of elements along each of `dims`, as `torch.flip` (a copy, not a view).
 *
 * @example
 * ```ts
 * const mirrored = k.flip(images, [3]); // horizontal flip of [N, C, H, W]
 * k.flip(k.tensor([[1, 2], [3, 4]]), [0, 1]); // [[4, 3], [2, 1]]
 * ```
 */
export function flip(x: Tensor, dims: readonly number[]): Tensor {
  if (!Array.isArray(dims)) throw new ArgumentError(`flip: dims must be an array of dims, got ${String(dims)}`);
  const ds = dims.map((v) => normDim(v, Math.max(x.ndim, 1), 'flip'));
  if (new Set(ds).size !== ds.length) throw new ArgumentError(`flip: dims [${dims.join(', ')}] name a dim twice`);
  if (ds.length === 0 || x.ndim === 0 || x.numel() === 0) return clone(x);
  const y = noGrad(() => tidy(() => flipUntracked(x, ds)));
  return record(y, 'flip', [x], (g) => [flip(g, ds)]);
}

/**
 * Below this many elements per gathered row, the row kernels' per-row cost dominates (one id per
 * element), so `flip` first moves the last flipped dim to the front to make rows long.
 */
const LONG_ROW = 16;

/** `flip` without autograd: one row gather, indexing the dims up to the last flipped one. */
function flipUntracked(x: Tensor, ds: readonly number[]): Tensor {
  const last = Math.max(...ds);
  const rowSize = numel(x.shape.slice(last + 1));
  const device = x.device;
  if (rowSize < LONG_ROW && x.shape[last] > 1) {
    const n = x.shape[last];
    const reversed = sub(n - 1, arange(0, n, 1, { device, dtype: 'int32' }));
    const picked = contiguous(indexSelect(x, last, reversed));
    const rest = ds.filter((d) => d !== last);
    return rest.length ? flipUntracked(picked, rest) : picked;
  }
  const outer = x.shape.slice(0, last + 1);
  const ostrides = contiguousStrides(outer);
  let idx: Tensor | null = null;
  for (let i = 0; i < outer.length; i++) {
    const s = outer[i];
    let pos = arange(0, s, 1, { device, dtype: 'int32' });
    if (ds.includes(i)) pos = sub(s - 1, pos);
    const term = reshape(
      mul(pos, ostrides[i]),
      outer.map((_, j) => (j === i ? s : 1)),
    );
    idx = idx ? add(idx, term) : term;
  }
  const table = reshape(contiguous(x), [numel(outer), rowSize]);
  return reshape(takeRows('flip', 'internal index out of range', table, reshape(idx!, [-1])), x.shape);
}
