import * as k from '@kiln/tensor-core';

/**
 * Scales the gradients of `parameters` in place so that their joint norm is at most `maxNorm`
 * (`torch.nn.utils.clip_grad_norm_`), and returns the norm before clipping as a 0-d float32
 * tensor that the caller owns. Nothing is read back: the scale
 * `min(1, maxNorm / (norm + 1e-6))` is computed with tensor ops, so a GPU backend never stalls.
 * Norms are accumulated in float32 even for half-precision gradients, which would overflow.
 *
 * @example
 * ```ts
 * loss.backward();
 * const norm = clipGradNorm(model.parameters(), 1.0);
 * opt.step();
 * console.log(await norm.item());
 * norm.dispose();
 * ```
 */
export function clipGradNorm(parameters: Iterable<k.Tensor>, maxNorm: number, normType: number = 2): k.Tensor {
  if (!(maxNorm >= 0)) throw new k.ArgumentError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  if (normType !== 2 && normType !== Infinity) throw new k.ArgumentError(`clipGradNorm: normType must be 2 or Infinity, got ${normType}`);
  const grads = [...parameters].map((p) => p.grad).filter((g): g is k.Tensor => g !== null);
  return k.noGrad(() =>
    k.tidy(() => {
      if (grads.length === 0) return k.zeros([]);
      const per = grads.map((g) => {
        const g32 = k.cast(g, 'float32');
        return normType === Infinity ? g32.abs().max() : g32.square().sum();
      });
      const stacked = k.stack(per);
      const total = normType === Infinity ? stacked.max() : stacked.sum().sqrt();
      const coef = k.div(maxNorm, total.add(1e-6)).clamp(undefined, 1);
      for (const g of grads) g.assign_(k.mul(g, k.cast(coef, g.dtype)));
      return total;
    }),
  );
}
