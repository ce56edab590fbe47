import * as k from '@kiln/tensor-core';
import { OptimizerError } from '../errors.js';
import { Optimizer } from './optimizer.js';
import type { BaseHyper, ParamGroup, ParamGroupInput } from './optimizer.js';

/** AdamW hyperparameters; the defaults are `torch.optim.AdamW`'s. @example new AdamW(unet.parameters(), { lr: 5e-6, betas: [0.9, 0.999], weightDecay: 1e-2, eps: 1e-8 }); */
export interface AdamWHyper extends BaseHyper {
  /** Default 1e-3. */
  lr: number;
  /** Default [0.9, 0.999]. */
  betas: readonly [number, number];
  /** Default 1e-8. */
  eps: number;
  /** Decoupled weight decay, default 1e-2. */
  weightDecay: number;
}

/** Per-parameter AdamW state (PyTorch's `step`, `exp_avg`, `exp_avg_sq`). @example const { state } = opt.stateDict(); // AdamW's: { step, expAvg, expAvgSq } per parameter */
export type AdamWState = { step: number; expAvg: k.Tensor; expAvgSq: k.Tensor };

/**
 * AdamW (Loshchilov & Hutter) with PyTorch's update rule: `p ← p·(1 − lr·wd)`, then the bias-
 * corrected Adam step `p ← p − lr/(1−β₁ᵗ) · m / (√(v/(1−β₂ᵗ)) + eps)`. Each parameter is updated by
 * tensor-core's fused `k.adamwUpdate` kernel. Parameters without a gradient are skipped; the
 * moments live in the parameter's dtype, as in PyTorch.
 *
 * @example
 * ```ts
 * const opt = new AdamW(unet.parameters(), { lr: 5e-6 });
 * loss.backward();
 * opt.step();
 * opt.zeroGrad();
 * ```
 */
export class AdamW extends Optimizer<AdamWHyper, AdamWState> {
  constructor(params: Iterable<k.Tensor> | Iterable<ParamGroupInput<AdamWHyper>>, options: Partial<AdamWHyper> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, ...options });
  }

  protected validate(g: ParamGroup<AdamWHyper>): void {
    const [b1, b2] = g.betas;
    if (!(g.lr >= 0)) throw new OptimizerError(`AdamW: invalid learning rate ${g.lr}`);
    if (!(g.eps >= 0)) throw new OptimizerError(`AdamW: invalid eps ${g.eps}`);
    if (!(b1 >= 0 && b1 < 1)) throw new OptimizerError(`AdamW: invalid beta1 ${b1} (needs 0 <= beta1 < 1)`);
    if (!(b2 >= 0 && b2 < 1)) throw new OptimizerError(`AdamW: invalid beta2 ${b2} (needs 0 <= beta2 < 1)`);
    if (!(g.weightDecay >= 0)) throw new OptimizerError(`AdamW: invalid weight decay ${g.weightDecay}`);
  }

  step(): void {
    k.noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          if (!p.grad) continue;
          let s = this.state.get(p);
          if (!s) {
            s = { step: 0, expAvg: k.keep(k.zerosLike(p)), expAvgSq: k.keep(k.zerosLike(p)) };
            this.state.set(p, s);
          }
          s.step += 1;
          const hp = { lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps, weightDecay: g.weightDecay, step: s.step };
          if (p.grad.dtype === p.dtype) k.adamwUpdate(p, p.grad, s.expAvg, s.expAvgSq, hp);
          else {
            const grad = k.cast(p.grad, p.dtype);
            k.adamwUpdate(p, grad, s.expAvg, s.expAvgSq, hp);
            grad.dispose();
          }
        }
      }
    });
  }
}
