import { ArgumentError, ShapeError } from '../errors.js';
import { fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { tensor } from './creation.js';
import { indexSelect } from './gather.js';
import { contiguous, expand, reshape } from './view.js';

/** Options of `interpolate`: an output `size` or a `scaleFactor`. @example k.interpolate(x, { scaleFactor: 2, mode: 'nearest' }); // or { size: [64, 64] } */
export interface InterpolateOptions {
  /** Output `[H, W]` (or one size for both); any positive sizes. Give this or `scaleFactor`. */
  size?: number | readonly [number, number];
  /** Factor for H and W (or `[h, w]`); the output is `floor(input * factor)`. Give this or `size`. */
  scaleFactor?: number | readonly [number, number];
  mode?: 'nearest';
}

const pair = (v: number | readonly [number, number]): readonly [number, number] => (typeof v === 'number' ? [v, v] : v);

/**
 * Source row (or column) of each output one, exactly as PyTorch's `nearest_idx` (ATen
 * `UpSample.h`/`UpSampleKernel.cpp`): the same size copies, twice the size halves the index, and
 * otherwise `min(floorf(dst * scale), in - 1)` in float32, where `scale` is `(float)in / out` for
 * an explicit size and `(float)(1 / scaleFactor)` for a scale factor.
 */
export function nearestSourceIndex(inSize: number, outSize: number, scaleFactor?: number): Int32Array {
  const idx = new Int32Array(outSize);
  if (outSize === inSize) return idx.map((_, i) => i);
  if (outSize === 2 * inSize) return idx.map((_, i) => i >> 1);
  const scale = Math.fround(scaleFactor !== undefined && scaleFactor > 0 ? 1 / scaleFactor : inSize / outSize);
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  return idx;
}

/** The integer factor when `idx` is plain replication (`i → floor(i / f)`), else 0. */
function replicationFactor(idx: Int32Array, inSize: number): number {
  if (idx.length % inSize !== 0) return 0;
  const f = idx.length / inSize;
  return idx.every((v, i) => v === Math.floor(i / f)) ? f : 0;
}

/**
 * Nearest-neighbour resizing of `[N, C, H, W]` to an explicit `size` or by a `scaleFactor`, as
 * `torch.nn.functional.interpolate(x, size | scale_factor, mode='nearest')`, including its
 * source-index rounding for non-integer ratios (diffusers' `upsample_size` path). Integer factors
 * are a broadcast view and one copy; other ratios select rows and columns.
 *
 * @example
 * ```ts
 * k.interpolate(x, { scaleFactor: 2 }).shape; // [N, C, 2H, 2W]
 * k.interpolate(k.zeros([1, 4, 5, 7]), { size: [9, 12] }).shape; // [1, 4, 9, 12]
 * ```
 */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  if (x.ndim !== 4) throw new ShapeError(`interpolate: input must be [N, C, H, W], got ${fmt(x.shape)}`);
  const mode = options.mode ?? 'nearest';
  if (mode !== 'nearest') throw new ArgumentError(`interpolate: mode '${String(mode)}' is not supported; use 'nearest'`);
  const [N, C, H, W] = x.shape;
  let out: readonly [number, number];
  let factors: readonly [number, number] | undefined;
  if (options.size !== undefined && options.scaleFactor !== undefined) {
    throw new ArgumentError('interpolate: give size or scaleFactor, not both');
  } else if (options.size !== undefined) {
    out = pair(options.size);
    if (out.length !== 2 || out.some((s) => !Number.isSafeInteger(s) || s < 1)) {
      throw new ArgumentError(`interpolate: size must be a positive integer or [h, w] of them, got ${JSON.stringify(options.size)}`);
    }
  } else if (options.scaleFactor !== undefined) {
    factors = pair(options.scaleFactor);
    if (factors.length !== 2 || factors.some((f) => typeof f !== 'number' || !Number.isFinite(f) || f <= 0)) {
      throw new ArgumentError(
        `interpolate: scaleFactor must be a positive number or [h, w] of them, got ${JSON.stringify(options.scaleFactor)}`,
      );
    }
    out = [Math.floor(H * factors[0]), Math.floor(W * factors[1])];
    if (out.some((s) => !Number.isSafeInteger(s) || s < 1)) {
      throw new ArgumentError(
        `interpolate: scaleFactor ${JSON.stringify(options.scaleFactor)} gives output size [${out.join(', ')}] from [${H}, ${W}]`,
      );
    }
  } else throw new ArgumentError('interpolate: give size or scaleFactor');
  const hIdx = nearestSourceIndex(H, out[0], factors?.[0]);
  const wIdx = nearestSourceIndex(W, out[1], factors?.[1]);
  const fh = replicationFactor(hIdx, H);
  const fw = replicationFactor(wIdx, W);
  if (fh && fw) {
    const wide = expand(reshape(x, [N, C, H, 1, W, 1]), [N, C, H, fh, W, fw]);
    return reshape(contiguous(wide), [N, C, H * fh, W * fw]);
  }
  const device = x.device;
  const rows = indexSelect(x, 2, tensor(hIdx, { dtype: 'int32', device }));
  return contiguous(indexSelect(rows, 3, tensor(wIdx, { dtype: 'int32', device })));
}
