import { isFloat, promoteTypes } from '../dtype.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { widen } from './accumulate.js';
import { backendOf, make, record } from './dispatch.js';
import { cast, ge, mul, sub } from './elementwise.js';
import { rand } from './creation.js';
import { checkedRows } from './gather.js';
import type { Generator } from '../random.js';
import { mean, sum } from './reduce.js';
import { reshape } from './view.js';

/**
 * Rows of `weight` ([numEmbeddings, dim]) picked by int32 `ids` of any shape → [...ids.shape, dim].
 *
 * @example
 * ```ts
 * k.embedding(k.tensor([[49406, 320]], { dtype: 'int32' }), tokenTable).shape; // [1, 2, 768]
 * ```
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (ids.dtype !== 'int32') throw new ArgumentError(`embedding: ids must be int32, got ${ids.dtype}`);
  if (weight.ndim !== 2) throw new ShapeError(`embedding: weight must be [numEmbeddings, dim], got ${fmt(weight.shape)}`);
  const b = backendOf('embedding', ids, weight);
  const [R, D] = weight.shape;
  const flatIds = reshape(ids, [-1]);
  const rows = make(
    b,
    checkedRows('embedding', `ids hold an id outside [0, ${R}) for weight ${fmt(weight.shape)}`, () =>
      b.gatherRows(weight._view(), flatIds._view()),
    ),
    weight.dtype,
    [flatIds.shape[0], D],
  );
  const y = reshape(rows, [...ids.shape, D]);
  return record(y, 'embedding', [weight], (g) => {
    const g2 = reshape(g, [-1, D]);
    return [make(b, b.scatterAddRows(g2._view(), flatIds._view(), R), g.dtype, [R, D])];
  });
}

/**
 * Zeroes elements with probability `p` and scales the rest by 1/(1-p) while `training`; the mask
 * comes from `seed`, `generator` or the default generator.
 *
 * @example
 * ```ts
 * k.dropout(x, 0.1, true, { seed: 7 });
 * ```
 */
export function dropout(x: Tensor, p = 0.5, training = true, options: { seed?: number; generator?: Generator } = {}): Tensor {
  if (!(p >= 0 && p <= 1)) throw new ArgumentError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return mul(x, 0);
  const keep = cast(ge(rand(x.shape, { seed: options.seed, generator: options.generator, device: x.device }), p), x.dtype);
  return mul(x, mul(keep, 1 / (1 - p)));
}

/**
 * Mean squared error, `torch.nn.functional.mse_loss`.
 *
 * @example
 * ```ts
 * const loss = k.mseLoss(prediction, target); // 0-d
 * ```
 */
export function mseLoss(input: Tensor, target: Tensor, reduction: 'mean' | 'sum' | 'none' = 'mean'): Tensor {
  if (fmt(input.shape) !== fmt(target.shape)) {
    throw new ShapeError(`mseLoss: input ${fmt(input.shape)} and target ${fmt(target.shape)} must have the same shape`);
  }
  const x = isFloat(input.dtype) ? input : cast(input, 'float32');
  // Half inputs are differenced, squared and reduced in f32, then rounded once (see accumulate.ts).
  const d = sub(widen(x), widen(target));
  const se = mul(d, d);
  const out = reduction === 'none' ? se : reduction === 'sum' ? sum(se) : mean(se);
  return cast(out, promoteTypes(x.dtype, target.dtype));
}
