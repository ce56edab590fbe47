import { ArgumentError, ShapeError } from '../errors.js';
import { fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { conv2d } from './conv.js';
import { make } from './dispatch.js';

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
  if (!Number.isInteger(kernelSize) || kernelSize < 1)
    throw new ArgumentError(`avgPool2d: kernelSize must be a positive integer, got ${kernelSize}`);
  const C = x.shape[1];
  const b = x._backend();
  const w = make(b, b.fill(x.dtype, C * kernelSize * kernelSize, 1 / (kernelSize * kernelSize)), x.dtype, [C, 1, kernelSize, kernelSize]);
  return conv2d(x, w, null, { stride, groups: C });
}
