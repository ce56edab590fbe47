import * as k from '@kiln/tensor-core';
import { fanIn, kaimingUniform, uniform } from '../init.js';
import type { FactoryOptions } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';

/** Options of {@link Linear}. @example new Linear(768, 320, { bias: false }); // to_q, to_k, to_v in SD's attention */
export interface LinearOptions extends FactoryOptions {
  /** Whether to add a learned bias (default true). */
  bias?: boolean;
}

/**
 * `y = x Wᵀ + b` (`torch.nn.Linear`): weight [out, in] and bias [out], initialised like PyTorch
 * (kaiming_uniform(a=√5) for the weight, U(±1/√in) for the bias) from the global generator.
 *
 * @example
 * ```ts
 * k.manualSeed(0);
 * const proj = new Linear(768, 320);
 * proj.forward(k.randn([2, 77, 768])).shape; // [2, 77, 320]
 * ```
 */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    const shape = [outFeatures, inFeatures];
    this.weight = this.registerParameter('weight', kaimingUniform(shape, Math.sqrt(5), options));
    const bound = inFeatures > 0 ? 1 / Math.sqrt(fanIn(shape)) : 0;
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniform([outFeatures], -bound, bound, options));
  }

  forward(x: k.Tensor): k.Tensor {
    return this.applyAdapters(x, k.linear(x, this.weight, this.bias));
  }
}
