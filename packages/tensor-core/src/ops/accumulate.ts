import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { cast } from './elementwise.js';

/**
 * The dtype a reduction accumulates in: float32 for the half types (PyTorch's `acc_type`), the
 * input's own dtype otherwise. A float16 sum of 70,000 values stalls at 2048 and overflows past
 * 65504, so sums, means, variances, the norm composites and losses over half tensors widen first
 * and round once at the end. The widening happens in the op layer with a `cast` kernel, so it holds
 * on every backend, whatever its kernels do internally.
 */
export function accumulationType(dtype: DType): DType {
  return dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype;
}

export function isHalf(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'bfloat16';
}

/** `x` in its accumulation type (itself unless it is a half type). Differentiable. */
export function widen(x: Tensor): Tensor {
  return cast(x, accumulationType(x.dtype));
}

/**
 * Runs `fn` on `x` widened to its accumulation type and casts the result back to `x`'s dtype,
 * so composites made of several reductions see one rounding, at the end.
 */
export function inAccumulationType(x: Tensor, fn: (wide: Tensor) => Tensor): Tensor {
  if (!isHalf(x.dtype)) return fn(x);
  return cast(fn(widen(x)), x.dtype);
}
