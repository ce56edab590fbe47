import * as k from '@kiln/tensor-core';
import type { FactoryOptions } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';

/**
 * Group normalisation (`torch.nn.GroupNorm`) over `numGroups` groups of channels, with a
 * per-channel affine transform initialised to weight 1, bias 0.
 *
 * @example
 * ```ts
 * const norm = new GroupNorm(32, 320, { eps: 1e-6 });
 * norm.forward(k.randn([1, 320, 8, 8])).shape; // [1, 320, 8, 8]
 * ```
 */
export class GroupNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    options: FactoryOptions & { eps?: number; affine?: boolean } = {},
  ) {
    super();
    if (numChannels % numGroups !== 0)
      throw new k.ArgumentError(`GroupNorm: ${numChannels} channels do not split into ${numGroups} groups`);
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', k.ones([numChannels], options)) : null;
    this.bias = affine ? this.registerParameter('bias', k.zeros([numChannels], options)) : null;
  }

  forward(x: k.Tensor): k.Tensor {
    return k.groupNorm(x, this.numGroups, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }
}
