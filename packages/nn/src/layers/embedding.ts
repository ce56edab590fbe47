import * as k from '@kiln/tensor-core';
import { normal } from '../init.js';
import type { FactoryOptions } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';

/**
 * A lookup table (`torch.nn.Embedding`): int32 ids of any shape → [...shape, embeddingDim]. The
 * weight is N(0, 1) at initialisation, as in PyTorch.
 *
 * @example
 * ```ts
 * const tokens = new Embedding(49408, 768);
 * tokens.forward(k.tensor([[49406, 320, 49407]], { dtype: 'int32' })).shape; // [1, 3, 768]
 * ```
 */
export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: FactoryOptions = {},
  ) {
    super();
    this.weight = this.registerParameter('weight', normal([numEmbeddings, embeddingDim], 0, 1, options));
  }

  forward(ids: k.Tensor): k.Tensor {
    return k.embedding(ids, this.weight);
  }
}
