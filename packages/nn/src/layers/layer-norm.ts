import * as k from '@kiln/tensor-core';
import type { FactoryOptions } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';

/** Options of {@link LayerNorm}. @example new LayerNorm(768, { eps: 1e-5, elementwiseAffine: true }); */
export interface LayerNormOptions extends FactoryOptions {
  eps?: number;
  /** Learn weight (and bias) of the normalised shape (default true). */
  elementwiseAffine?: boolean;
  /** Learn a bias when `elementwiseAffine` (default true). */
  bias?: boolean;
}

/**
 * Layer normalisation over the trailing `normalizedShape` dims (`torch.nn.LayerNorm`), weight 1
 * and bias 0 at initialisation.
 *
 * @example
 * ```ts
 * const ln = new LayerNorm(768);
 * ln.forward(k.randn([1, 77, 768])).shape; // [1, 77, 768]
 * ```
 */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? this.registerParameter('weight', k.ones(this.normalizedShape, options)) : null;
    this.bias = affine && options.bias !== false ? this.registerParameter('bias', k.zeros(this.normalizedShape, options)) : null;
  }

  forward(x: k.Tensor): k.Tensor {
    return k.layerNorm(x, this.normalizedShape, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }
}
