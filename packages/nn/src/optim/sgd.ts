import * as k from '@kiln/tensor-core';
import { OptimizerError } from '../errors.js';
import { Optimizer } from './optimizer.js';
import type { BaseHyper, ParamGroup, ParamGroupInput } from './optimizer.js';

/** SGD hyperparameters; the defaults are `torch.optim.SGD`'s. @example new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 }); */
export interface SGDHyper extends BaseHyper {
  /** Default 1e-3. */
  lr: number;
  /** Default 0 (plain SGD). */
  momentum: number;
  /** Default 0. */
  dampening: number;
  /** L2 penalty added to the gradient (coupled, unlike AdamW), default 0. */
  weightDecay: number;
  /** Default false; needs momentum > 0 and dampening 0. */
  nesterov: boolean;
}

/** Per-parameter SGD state (PyTorch's `momentum_buffer`). @example const { state } = opt.stateDict(); // SGD with momentum: { momentumBuffer } per parameter */
export type SGDState = { momentumBuffer: k.Tensor };

/**
 * Stochastic gradient descent with PyTorch's semantics: `d = g + wd·p`; with momentum,
 * `buf = d` on the first step and `buf = μ·buf + (1 − dampening)·d` after; `d = d + μ·buf` with
 * Nesterov, else `d = buf`; then `p ← p − lr·d`.
 *
 * @example
 * ```ts
 * const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true });
 * ```
 */
export class SGD extends Optimizer<SGDHyper, SGDState> {
  constructor(params: Iterable<k.Tensor> | Iterable<ParamGroupInput<SGDHyper>>, options: Partial<SGDHyper> = {}) {
    super(params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options });
  }

  protected validate(g: ParamGroup<SGDHyper>): void {
    if (!(g.lr >= 0)) throw new OptimizerError(`SGD: invalid learning rate ${g.lr}`);
    if (!(g.momentum >= 0)) throw new OptimizerError(`SGD: invalid momentum ${g.momentum}`);
    if (!(g.weightDecay >= 0)) throw new OptimizerError(`SGD: invalid weight decay ${g.weightDecay}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0))
      throw new OptimizerError('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
  }

  step(): void {
    k.noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          if (!p.grad) continue;
          k.tidy(() => {
            let d = k.cast(p.grad!, p.dtype);
            if (g.weightDecay !== 0) d = k.add(d, p, g.weightDecay);
            if (g.momentum !== 0) {
              const s = this.state.get(p);
              let buf: k.Tensor;
              if (!s) {
                buf = k.keep(k.clone(d));
                this.state.set(p, { momentumBuffer: buf });
              } else {
                buf = s.momentumBuffer;
                buf.assign_(k.add(k.mul(buf, g.momentum), d, 1 - g.dampening));
              }
              d = g.nesterov ? k.add(d, buf, g.momentum) : buf;
            }
            p.assign_(k.add(p, d, -g.lr));
          });
        }
      }
    });
  }
}
