import { noGrad, tidy } from '../runtime.js';
import { normDim } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { inAccumulationType } from './accumulate.js';
import { make, record } from './dispatch.js';
import { cast, exp, log, mul, sub } from './elementwise.js';
import { isFloat } from '../dtype.js';
import { max, sum } from './reduce.js';
import { transpose } from './view.js';

function softmaxLast(x: Tensor, logOut: boolean): Tensor {
  const b = x._backend();
  const y = noGrad(() =>
    tidy(() => {
      const fused = b.softmax?.(x._view(), logOut);
      if (fused !== undefined) return make(b, fused, x.dtype, x.shape);
      // Half inputs: the composite runs in f32 and rounds once (see accumulate.ts).
      return inAccumulationType(x, (xw) => {
        const shifted = sub(xw, max(xw, -1, true));
        if (logOut) return sub(shifted, log(sum(exp(shifted), -1, true)));
        const e = exp(shifted);
        return mul(e, sum(e, -1, true).reciprocal());
      });
    }),
  );
  return record(y, logOut ? 'logSoftmax' : 'softmax', [x], (g) =>
    logOut ? [sub(g, mul(exp(y), sum(g, -1, true)))] : [mul(y, sub(g, sum(mul(g, y), -1, true)))],
  );
}

function along(x: Tensor, dim: number, logOut: boolean): Tensor {
  const input = isFloat(x.dtype) ? x : cast(x, 'float32');
  const d = normDim(dim, Math.max(x.ndim, 1), logOut ? 'logSoftmax' : 'softmax');
  if (x.ndim === 0) return softmaxLast(input, logOut);
  if (d === x.ndim - 1) return softmaxLast(input, logOut);
  return transpose(softmaxLast(transpose(input, d, -1), logOut), d, -1);
}

/**
 * Softmax along `dim`, numerically stable; fused on backends that have the kernel.
 *
 * @example
 * ```ts
 * k.softmax(logits, -1);
 * ```
 */
export const softmax = (x: Tensor, dim: number): Tensor => along(x, dim, false);

/** log(softmax(x)) along `dim`, computed without forming the softmax. @example const logp = k.logSoftmax(logits, -1); */
export const logSoftmax = (x: Tensor, dim: number): Tensor => along(x, dim, true);
