import { isFloat } from '../dtype.js';
import { noGrad, tidy } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { abs, eq, fullLike, le, logicalNot, lt } from './elementwise.js';

// Float classification as comparisons, so every backend's compare kernels serve it. Results are
// bool and carry no gradient; integer and bool inputs are always finite and never NaN.

/**
 * True where `x` is NaN (`torch.isnan`), as a bool tensor.
 *
 * @example
 * ```ts
 * await k.isnan(k.tensor([1, NaN, Infinity])).toArray(); // [false, true, false]
 * ```
 */
export function isnan(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return fullLike(x, 0, 'bool');
  // Not `x != x`: WGSL compilers may emit an ordered not-equal, which is false for NaN. Every
  // ordered comparison with NaN is false, so NaN is what fails `|x| <= Infinity`.
  return noGrad(() => tidy(() => logicalNot(le(abs(x), Infinity))));
}

/**
 * True where `x` is neither NaN nor ±Infinity (`torch.isfinite`), as a bool tensor: the check a
 * trainer runs on a loss or gradients before an optimizer step.
 *
 * @example
 * ```ts
 * await k.isfinite(k.tensor([1, NaN, -Infinity])).toArray(); // [true, false, false]
 * ```
 */
export function isfinite(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return fullLike(x, 1, 'bool');
  return noGrad(() => tidy(() => lt(abs(x), Infinity)));
}

/**
 * True where `x` is +Infinity or -Infinity (`torch.isinf`), as a bool tensor.
 *
 * @example
 * ```ts
 * await k.isinf(k.tensor([1, NaN, -Infinity])).toArray(); // [false, false, true]
 * ```
 */
export function isinf(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) return fullLike(x, 0, 'bool');
  return noGrad(() => tidy(() => eq(abs(x), Infinity)));
}
