import * as k from '@kiln/tensor-core';
import { fanIn, kaimingUniform, uniform } from '../init.js';
import type { FactoryOptions } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';

/** One value for both spatial dims, or [h, w]. @example new Conv2d(4, 320, 3, { padding: 1 }); new Conv2d(4, 320, [3, 1], { padding: [1, 0] }); */
export type Pair = number | readonly [number, number];

/** Options of {@link Conv2d}: `torch.nn.Conv2d`'s keyword arguments, camel-cased. @example new Conv2d(320, 320, 3, { stride: 2, padding: 1 }); // a Downsample2D's conv */
export interface Conv2dLayerOptions extends FactoryOptions {
  stride?: Pair;
  /** Zero padding per side, or 'valid' / 'same'. */
  padding?: Pair | 'valid' | 'same';
  dilation?: Pair;
  groups?: number;
  /** Whether to add a learned bias (default true). */
  bias?: boolean;
}

/**
 * 2-D convolution (`torch.nn.Conv2d`): weight [out, in/groups, kh, kw], bias [out], PyTorch's
 * default initialisation from the global generator.
 *
 * @example
 * ```ts
 * const convIn = new Conv2d(4, 320, 3, { padding: 1 });
 * convIn.forward(k.randn([1, 4, 64, 64])).shape; // [1, 320, 64, 64]
 * ```
 */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly options: Readonly<k.Conv2dOptions>;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    options: Conv2dLayerOptions = {},
  ) {
    super();
    const groups = options.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new k.ArgumentError(`Conv2d: inChannels ${inChannels} and outChannels ${outChannels} must be divisible by groups ${groups}`);
    }
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    const shape = [outChannels, inChannels / groups, kh, kw];
    this.weight = this.registerParameter('weight', kaimingUniform(shape, Math.sqrt(5), options));
    const bound = 1 / Math.sqrt(fanIn(shape));
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniform([outChannels], -bound, bound, options));
    this.options = { stride: options.stride, padding: options.padding, dilation: options.dilation, groups };
  }

  forward(x: k.Tensor): k.Tensor {
    return this.applyAdapters(x, k.conv2d(x, this.weight, this.bias, this.options));
  }
}
