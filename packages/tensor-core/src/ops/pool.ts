import { ArgumentError, ShapeError } from '../errors.js';
import { fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { conv2d } from './conv.js';
import { make } from './dispatch.js';
import { contiguous, expand, reshape } from './view.js';

/**
 * Average pooling over `kernelSize`×`kernelSize` windows (`stride` defaults to the kernel size),
 * as a depthwise convolution so that every backend's conv kernels serve it.
 *
 * @example
 * ```ts
 * k.avgPool2d(x, 2).shape; // halves H and W
 * ```
 */
export function avgPool2d(x: Tensor, kernelSize: number, stride = kernelSize): Tensor {
  if (x.ndim !== 4) throw new ShapeError(`avgPool2d: input must be [N, C, H, W], got ${fmt(x.shape)}`);
  if (!Number.isInteger(kernelSize) || kernelSize < 1) throw new ArgumentError(`avgPool2d: kernelSize must be a positive integer, got ${kernelSize}`);
  const C = x.shape[1];
  const b = x._backend();
  const w = make(b, b.fill(x.dtype, C * kernelSize * kernelSize, 1 / (kernelSize * kernelSize)), x.dtype, [C, 1, kernelSize, kernelSize]);
  return conv2d(x, w, null, { stride, groups: C });
}

export interface InterpolateOptions {
  /** Integer factor for H and W (nearest mode replicates pixels). */
  scaleFactor?: number;
  /** Output [H, W]; must be integer multiples of the input size. */
  size?: readonly [number, number];
  mode?: 'nearest';
}

/**
 * Nearest-neighbour upsampling by an integer factor (what SD's UNet and VAE use), built from a
 * broadcast view and a copy.
 *
 * @example
 * ```ts
 * k.interpolate(x, { scaleFactor: 2 }).shape; // [N, C, 2H, 2W]
 * ```
 */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  if (x.ndim !== 4) throw new ShapeError(`interpolate: input must be [N, C, H, W], got ${fmt(x.shape)}`);
  const mode = options.mode ?? 'nearest';
  if (mode !== 'nearest') throw new ArgumentError(`interpolate: mode '${mode}' is not supported; use 'nearest'`);
  const [N, C, H, W] = x.shape;
  let sh: number;
  let sw: number;
  if (options.size) {
    sh = options.size[0] / H;
    sw = options.size[1] / W;
  } else if (options.scaleFactor !== undefined) {
    sh = sw = options.scaleFactor;
  } else throw new ArgumentError('interpolate: give scaleFactor or size');
  if (!Number.isInteger(sh) || !Number.isInteger(sw) || sh < 1 || sw < 1) {
    throw new ArgumentError(`interpolate: nearest mode needs integer scale factors, got ${sh}×${sw}`);
  }
  const wide = expand(reshape(x, [N, C, H, 1, W, 1]), [N, C, H, sh, W, sw]);
  return reshape(contiguous(wide), [N, C, H * sh, W * sw]);
}
